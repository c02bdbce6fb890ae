// One helper thread of the page's CPU path (crates/mia-web/src/pool.rs starts one per core,
// up to four). It instantiates the page's own module, already compiled and posted by the
// page, and runs chunks of images through the models it is given (crates/mia-web/src/helper.rs).
// Messages, answered in order: start {glue, module}; load {id, model, manifest, weights};
// infer {id, model, pixels}. Answers: {id} or {id, out} (logits), {id, error}; {id: -1, error}
// when the helper could not start.
let ready = null;
self.onmessage = async ({ data }) => {
  const { id, kind } = data;
  if (kind === "start") {
    ready = import(data.glue).then(async (glue) => {
      await glue.default({ module_or_path: data.module });
      return glue;
    });
    ready.catch((e) => self.postMessage({ id: -1, error: `a helper thread could not start: ${e?.message || e}` }));
    return;
  }
  try {
    if (!ready) throw new Error("the helper thread was not started");
    const glue = await ready;
    if (kind === "load") {
      glue.helperLoad(data.model, data.manifest, data.weights);
      self.postMessage({ id });
    } else if (kind === "infer") {
      const out = await glue.helperInfer(data.model, data.pixels);
      self.postMessage({ id, out }, [out.buffer]);
    } else {
      throw new Error(`a helper thread got a message it does not know: ${kind}`);
    }
  } catch (e) {
    self.postMessage({ id, error: String(e?.message || e) });
  }
};
