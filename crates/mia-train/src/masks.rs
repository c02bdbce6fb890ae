//! Pruning masks ([`Masks`]): which convolution and linear weights a pruned model keeps, by
//! magnitude (global, unstructured) or by filter (structured), applied after every step of
//! the epoch loop so pruned weights stay exactly zero. The recipe that prunes and
//! fine-tunes is [`crate::prune`].

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use mia_core::Model;

use crate::TrainError;

/// One prunable tensor: a convolution's or linear layer's weight (and a convolution's bias,
/// which structured pruning masks with its filter).
pub(crate) struct Prunable {
    pub(crate) id: ParamId,
    /// The module path (`features.0`), shared by a layer's weight and bias.
    pub(crate) layer: String,
    /// `weight` or `bias`.
    pub(crate) name: String,
    pub(crate) conv: bool,
    pub(crate) shape: Vec<usize>,
    pub(crate) values: Vec<f32>,
}

/// Collects the convolutions' and linear layers' weights and the convolutions' biases.
#[derive(Default)]
struct Collect {
    path: Vec<(String, String)>,
    found: Vec<Prunable>,
    error: Option<TrainError>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some((name, container)) = self.path.last() else { return };
        let conv = container == "Struct:Conv2d";
        let eligible = match name.as_str() {
            "weight" => conv || container == "Struct:Linear",
            "bias" => conv,
            _ => false,
        };
        if !eligible {
            return;
        }
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        match tensor.into_data().try_to_vec::<f32>() {
            Ok(values) => self.found.push(Prunable {
                id: param.id,
                layer: self.path[..self.path.len() - 1]
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
                name: name.clone(),
                conv,
                shape,
                values,
            }),
            Err(e) => self.error = Some(TrainError::Backend(format!("reading weights: {e:?}"))),
        }
    }
}

pub(crate) fn prunables(model: &Model) -> Result<Vec<Prunable>, TrainError> {
    let mut collect = Collect::default();
    model.visit(&mut collect);
    match collect.error {
        Some(e) => Err(e),
        None => Ok(collect.found),
    }
}

/// Pruning masks (1 keeps a weight, 0 prunes it), by parameter, flattened, held on the
/// (inner) device they are applied on, so a step's masking uploads nothing.
#[derive(Debug, Clone)]
pub struct Masks {
    by_param: HashMap<ParamId, Tensor<1>>,
}

impl Masks {
    /// The masks of `model` at `sparsity`, unstructured (global over every convolution and
    /// linear weight) or structured (per convolution, whole filters and their biases), on
    /// `device` (without autodiff: the device the model's parameters live on).
    pub fn magnitude(
        model: &Model,
        sparsity: f64,
        structured: bool,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let params = prunables(model)?;
        let masks = if structured { filters(&params, sparsity) } else { global(&params, sparsity) };
        let by_param = masks
            .into_iter()
            .map(|(id, mask)| {
                let n = mask.len();
                (id, Tensor::<1>::from_data(TensorData::new(mask, [n]), device))
            })
            .collect();
        Ok(Self { by_param })
    }

    /// `model` with every masked weight set to zero; parameters keep their ids and whether
    /// they take gradients (so an optimiser's state still applies).
    pub fn apply(&self, model: Model) -> Model {
        model.map(&mut ApplyMasks { masks: &self.by_param })
    }
}

/// Global magnitude pruning of the weights (not the biases): the `sparsity` fraction with the
/// smallest |w| over all of them, ties broken by position so the count is exact.
fn global(params: &[Prunable], sparsity: f64) -> HashMap<ParamId, Vec<f32>> {
    let weights: Vec<&Prunable> = params.iter().filter(|p| p.name == "weight").collect();
    let mut all: Vec<(f32, usize, usize)> = weights
        .iter()
        .enumerate()
        .flat_map(|(t, p)| p.values.iter().enumerate().map(move |(i, w)| (w.abs(), t, i)))
        .collect();
    let cut = ((all.len() as f64) * sparsity).round() as usize;
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut masks: Vec<Vec<f32>> = weights.iter().map(|p| vec![1.0; p.values.len()]).collect();
    for &(_, t, i) in &all[..cut] {
        masks[t][i] = 0.0;
    }
    weights.iter().zip(masks).map(|(p, m)| (p.id, m)).collect()
}

/// Structured pruning: in every convolution, the `sparsity` fraction of output filters with
/// the smallest L1 norm (at least one filter kept), and the same outputs of its bias.
fn filters(params: &[Prunable], sparsity: f64) -> HashMap<ParamId, Vec<f32>> {
    let mut out = HashMap::new();
    for w in params.iter().filter(|p| p.conv && p.name == "weight") {
        let filters = w.shape[0];
        let per = w.values.len() / filters.max(1);
        let mut norms: Vec<(f32, usize)> = w
            .values
            .chunks(per.max(1))
            .map(|c| c.iter().map(|v| v.abs()).sum::<f32>())
            .zip(0..)
            .collect();
        norms.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let cut = (((filters as f64) * sparsity).round() as usize).min(filters - 1);
        let mut keep = vec![1.0f32; filters];
        for &(_, f) in &norms[..cut] {
            keep[f] = 0.0;
        }
        let mask = keep.iter().flat_map(|k| std::iter::repeat_n(*k, per)).collect();
        out.insert(w.id, mask);
        let bias = params.iter().find(|b| b.conv && b.name == "bias" && b.layer == w.layer);
        if let Some(b) = bias {
            out.insert(b.id, keep);
        }
    }
    out
}

struct ApplyMasks<'a> {
    masks: &'a HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for ApplyMasks<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(mask) = self.masks.get(&param.id) else { return param };
        param.map(|t| {
            // As burn's optimisers update a parameter: on the inner backend, then lifted back
            // as a leaf that takes gradients again.
            let (autodiff, grad) = (t.is_autodiff(), t.is_require_grad());
            let inner = t.inner();
            let dims = inner.dims();
            let masked = inner * mask.clone().reshape(dims);
            match (autodiff, grad) {
                (false, _) => masked,
                (true, false) => Tensor::from_inner(masked),
                (true, true) => Tensor::from_inner(masked).require_grad(),
            }
        })
    }
}

/// The fraction of the convolution and linear weights of `model` that are exactly zero.
pub fn measured_sparsity(model: &Model) -> Result<f64, TrainError> {
    let params = prunables(model)?;
    let (zeros, total) =
        params.iter().filter(|p| p.name == "weight").fold((0usize, 0usize), |(z, t), p| {
            (z + p.values.iter().filter(|v| **v == 0.0).count(), t + p.values.len())
        });
    Ok(zeros as f64 / total.max(1) as f64)
}
