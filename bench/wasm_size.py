"""Where the page's wasm bytes go: code bytes per crate, from the function names.

    python3 bench/wasm_size.py FILE.wasm [--top N]

FILE must still have its name section (cargo's wasm32 output before wasm-bindgen
--remove-name-section and wasm-opt). Prints the sections' sizes, then the code section's bytes
grouped by the crate that each function's (demangled) name starts with. Monomorphised generics
are counted where they were instantiated's name says (e.g. a burn-flex kernel instantiated
from mia-core counts as burn_flex). No dependency beyond Python's standard library.
"""
import re
import sys
from collections import Counter


def leb(b, i):
    result = shift = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def sections(b):
    if b[:4] != b"\0asm":
        sys.exit("error: not a wasm file")
    i = 8
    while i < len(b):
        sid = b[i]
        size, j = leb(b, i + 1)
        yield sid, b[j:j + size]
        i = j + size


def imported_functions(payload):
    n, i = leb(payload, 0)
    funcs = 0
    for _ in range(n):
        for _ in range(2):  # module, field
            ln, i = leb(payload, i)
            i += ln
        kind = payload[i]
        i += 1
        if kind == 0:
            _, i = leb(payload, i)
            funcs += 1
        elif kind == 1:  # table: reftype, limits
            i += 1
            flags, i = leb(payload, i)
            _, i = leb(payload, i)
            if flags & 1:
                _, i = leb(payload, i)
        elif kind == 2:  # memory: limits
            flags, i = leb(payload, i)
            _, i = leb(payload, i)
            if flags & 1:
                _, i = leb(payload, i)
        elif kind == 3:  # global: valtype, mut
            i += 2
        else:
            sys.exit(f"error: unknown import kind {kind}")
    return funcs


def names(payload):
    ln, i = leb(payload, 0)
    if payload[i:i + ln] != b"name":
        return None
    i += ln
    out = {}
    while i < len(payload):
        sub = payload[i]
        size, i = leb(payload, i + 1)
        end = i + size
        if sub == 1:
            n, j = leb(payload, i)
            for _ in range(n):
                idx, j = leb(payload, j)
                ln, j = leb(payload, j)
                out[idx] = payload[j:j + ln].decode("utf-8", "replace")
                j += ln
        i = end
    return out


def crate_of(name):
    # Legacy mangling (_ZN4core3fmt...), or already demangled (core::fmt::...), or <impl ...>.
    m = re.match(r"_ZN(\d+)([\w$.]+)", name)
    if m:
        seg = m.group(2)[: int(m.group(1))]
        # `<Type as Trait>::f` is mangled as `_$LT$Type$u20$as$u20$Trait$GT$`: the type's crate.
        seg = re.sub(r"^_?(\$LT\$|\$RF\$|\$BP\$|mut\$u20\$|dyn\$u20\$|\$u5b\$)+", "", seg)
        return re.split(r"\.\.|\$", seg, maxsplit=1)[0] or "?"
    name = name.lstrip("<&*(").replace("dyn ", "").replace("mut ", "")
    return re.split(r"::|\s|<|>|\[|,", name, maxsplit=1)[0] or "?"


def main(argv):
    if not argv:
        sys.exit("hint: python3 bench/wasm_size.py FILE.wasm [--top N]")
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 25
    b = open(argv[0], "rb").read()
    imports, bodies, fnames, sizes = 0, [], None, Counter()
    for sid, payload in sections(b):
        key = f"custom:{payload[1:1 + payload[0]].decode(errors='replace')}" if sid == 0 else f"section {sid}"
        sizes[key] += len(payload)
        if sid == 2:
            imports = imported_functions(payload)
        elif sid == 10:
            n, i = leb(payload, 0)
            for _ in range(n):
                size, j = leb(payload, i)
                bodies.append(size + (j - i))
                i = j + size
        elif sid == 0 and fnames is None:
            fnames = names(payload)
    print(f"{len(b):,} bytes; sections:")
    for k, v in sizes.most_common():
        print(f"  {k:<40}{v:>14,}")
    if not fnames:
        sys.exit("no name section: run on cargo's output, before wasm-bindgen and wasm-opt")
    per = Counter()
    for k, size in enumerate(bodies):
        per[crate_of(fnames.get(imports + k, "?"))] += size
    code = sum(bodies)
    print(f"code by crate ({code:,} bytes in {len(bodies):,} functions):")
    for crate, size in per.most_common(top):
        print(f"  {crate:<40}{size:>14,}  {100 * size / code:5.1f} %")


if __name__ == "__main__":
    main(sys.argv[1:])
