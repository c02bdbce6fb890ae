//! Weights from untrusted bytes: a bundle's `.bpk` files fetched by the page, the network in a
//! lab file a classmate sent. burn's burnpack reader checks sizes and offsets but not what a
//! tensor claims to be: a quantized dtype skips the length check and burn then panics on the
//! data (seen: a crafted `QFloat` tensor panics in burn-std's `TensorData`), and any other
//! dtype is silently cast on load. Natively a panic could be caught; in the page (built with
//! `panic = "abort"`) it would kill the module. So [`load_record`] first checks every tensor
//! ([`check`]: stored as f32 or f16, with exactly the bytes its shape takes) and only then lets
//! burn read the bytes into the model, whose own checks refuse missing, unexpected and
//! misshaped tensors as errors. tests/fuzz.rs fuzzes this path with no panic catching.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType};
use burn_pack::Reader;

/// Checks that every tensor of the burnpack `bytes` is stored as f32 or f16 with exactly the
/// bytes its shape takes; the reason, in words, when not.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let reader =
        Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| e.to_string())?;
    for t in reader.into_tensors().map_err(|e| e.to_string())? {
        let (name, dtype, shape, _, data) = t.into_parts().map_err(|e| e.to_string())?;
        if !matches!(dtype, DType::F32 | DType::F16) {
            return Err(format!("`{name}` is stored as {dtype:?}, not f32 or f16"));
        }
        let need = shape.iter().try_fold(dtype.size(), |n, &d| n.checked_mul(d));
        if need != Some(data.len()) {
            return Err(format!(
                "`{name}` has {} bytes of data for its shape {shape:?}",
                data.len()
            ));
        }
    }
    Ok(())
}

/// `skeleton` (a model of the intended shape) with the weights of the burnpack `bytes`, at
/// the model's dtype (f16 files are cast up): [`check`] first, then burn's reader and loader,
/// which refuse tensors that are missing, unexpected or of another shape.
pub fn load_record<M: Module>(bytes: Vec<u8>, skeleton: M) -> Result<M, String> {
    check(&bytes)?;
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| e.to_string())?;
    skeleton.try_load_record(record.cast_to_module_dtype()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, InputSpec, ModelConfig};
    use burn::prelude::*;
    use burn_pack::Writer;

    fn mlp() -> (ModelConfig, crate::Model, Vec<u8>) {
        let config = ModelConfig::new(Architecture::Mlp, InputSpec::new(1, 1, 6), 3);
        let model = config.init(&Device::flex()).unwrap();
        let bytes = model.clone().into_record().into_bytes().unwrap().to_vec();
        (config, model, bytes)
    }

    /// `bytes` with every tensor rewritten by `edit` (name, dtype, shape, data).
    fn rewrite(
        bytes: Vec<u8>,
        edit: impl Fn(String, DType, Vec<usize>, Vec<u8>) -> (String, DType, Vec<usize>, Vec<u8>),
    ) -> Vec<u8> {
        let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes)).unwrap();
        let out: Vec<_> = reader
            .into_tensors()
            .unwrap()
            .into_iter()
            .map(|t| {
                let (name, dtype, shape, id, data) = t.into_parts().unwrap();
                let (name, dtype, shape, data) = edit(name, dtype, shape.to_vec(), data.to_vec());
                burn_pack::Tensor::new(
                    name,
                    dtype,
                    burn::tensor::Shape::from(shape),
                    id,
                    Bytes::from_bytes_vec(data),
                )
            })
            .collect();
        Writer::new(out).into_bytes().unwrap().to_vec()
    }

    /// A tensor claiming `dtype`, with as many bytes as that takes (burnpack's writer checks);
    /// a quantized dtype, whose length nothing checks, keeps the f32 bytes.
    fn retyped(
        n: String,
        dtype: DType,
        s: Vec<usize>,
        d: Vec<u8>,
    ) -> (String, DType, Vec<usize>, Vec<u8>) {
        let len = if matches!(dtype, DType::QFloat(_)) {
            d.len()
        } else {
            s.iter().product::<usize>() * dtype.size()
        };
        (n, dtype, s, vec![1; len])
    }

    #[test]
    fn the_models_own_weights_pass_at_f32_and_f16() {
        let (config, model, bytes) = mlp();
        assert_eq!(check(&bytes), Ok(()));
        let half = config.weights_to_f16(bytes.clone()).unwrap();
        assert_eq!(check(&half), Ok(()));
        assert!(load_record(half, model.clone()).is_ok());
        assert!(load_record(bytes, model).is_ok());
    }

    #[test]
    fn crafted_dtypes_shapes_and_names_are_errors_not_panics() {
        let (_, model, bytes) = mlp();
        let dtypes = [
            DType::F64,
            DType::BF16,
            DType::I64,
            DType::I32,
            DType::I8,
            DType::U8,
            DType::U32,
            DType::Bool(burn::tensor::BoolStore::Native),
            // burn panics on this one's data when nothing checks it first.
            DType::QFloat(burn::tensor::quantization::QuantScheme::default()),
        ];
        for dtype in dtypes {
            let crafted = rewrite(bytes.clone(), |n, _, s, d| retyped(n, dtype, s, d));
            assert!(check(&crafted).is_err(), "{dtype:?} passed");
            // No panic catching here: an error is the only way out.
            assert!(load_record(crafted, model.clone()).is_err(), "{dtype:?}");
        }
        let renamed = rewrite(bytes.clone(), |n, t, s, d| (format!("{n}x"), t, s, d));
        assert!(load_record(renamed, model.clone()).is_err());
        let reshaped = rewrite(bytes.clone(), |n, t, mut s, d| {
            s.reverse();
            (n, t, s, d)
        });
        assert!(load_record(reshaped, model.clone()).is_err());
        let other = ModelConfig::new(Architecture::Mlp, InputSpec::new(1, 1, 7), 3);
        assert!(load_record(bytes.clone(), other.init(&Device::flex()).unwrap()).is_err());
        for cut in [0, 7, bytes.len() / 3, bytes.len() - 1] {
            assert!(load_record(bytes[..cut].to_vec(), model.clone()).is_err(), "cut at {cut}");
        }
    }
}
