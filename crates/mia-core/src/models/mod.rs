//! Model architectures shared by the trainer and the browser. Every model takes a
//! `[batch, channels, height, width]` tensor (tabular data as `[batch, 1, 1, features]`) and
//! returns `[batch, classes]` logits.

#[cfg(feature = "import")]
pub mod import;
mod mlleaks;
mod mlp;
mod mobilenet;
mod resnet;
mod small_cnn;
mod vgg;

pub use mlleaks::MlLeaksCnn;
pub use mlp::Mlp;
pub use mobilenet::MobileNetV2;
pub use resnet::ResNet20;
pub use small_cnn::SmallCnn;
pub use vgg::Vgg16Bn;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{CoreError, InputSpec};

/// The architectures MIA Lab can train and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// Two conv blocks and a small dense head; fast enough for the browser demo.
    SmallCnn,
    /// The CNN of ML-Leaks (Salem et al., NDSS 2019).
    MlLeaksCnn,
    /// ResNet-20 for 32×32 inputs (He et al., CVPR 2016, §4.2).
    Resnet20,
    /// VGG-16 with batch normalisation, CIFAR style (one linear classifier).
    Vgg16Bn,
    /// MobileNetV2 (Sandler et al., CVPR 2018) with the CIFAR stem (stride 1).
    MobilenetV2,
    /// Multi-layer perceptron for tabular data (Purchase-100 / Texas-100 style).
    Mlp,
}

impl Architecture {
    /// Every architecture, in display order.
    pub const ALL: [Architecture; 6] = [
        Self::SmallCnn,
        Self::MlLeaksCnn,
        Self::Resnet20,
        Self::Vgg16Bn,
        Self::MobilenetV2,
        Self::Mlp,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SmallCnn => "small-cnn",
            Self::MlLeaksCnn => "ml-leaks-cnn",
            Self::Resnet20 => "resnet20",
            Self::Vgg16Bn => "vgg16-bn",
            Self::MobilenetV2 => "mobilenet-v2",
            Self::Mlp => "mlp",
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Architecture {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| CoreError::UnknownArchitecture(s.to_string()))
    }
}

/// Everything needed to build a model: architecture, input shape, classes, dropout.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Which architecture.
    pub arch: Architecture,
    /// Input shape.
    pub input: InputSpec,
    /// Number of classes.
    pub num_classes: usize,
    /// Dropout rate before the classifier (a training-time defense); 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl ModelConfig {
    /// Checks that the architecture can take the input.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |reason: &str| {
            Err(CoreError::BadModelInput {
                arch: self.arch.to_string(),
                input: self.input.to_string(),
                reason: reason.to_string(),
            })
        };
        let i = self.input;
        if i.numel() == 0 || self.num_classes < 2 {
            return bad("inputs must be non-empty and there must be at least 2 classes");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        match self.arch {
            Architecture::Mlp => Ok(()),
            Architecture::SmallCnn if i.height < 4 || i.width < 4 => {
                bad("needs images of at least 4×4 (use `mlp` for tabular data)")
            }
            Architecture::MlLeaksCnn if i.height < 16 || i.width < 16 => {
                bad("needs images of at least 16×16")
            }
            Architecture::Resnet20 | Architecture::Vgg16Bn | Architecture::MobilenetV2
                if i.height < 8 || i.width < 8 =>
            {
                bad("needs images of at least 8×8")
            }
            _ => Ok(()),
        }
    }

    /// Builds the model with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Model, CoreError> {
        self.validate()?;
        let (i, c, p) = (self.input, self.num_classes, self.dropout);
        Ok(match self.arch {
            Architecture::SmallCnn => Model::SmallCnn(SmallCnn::new(i, c, p, device)),
            Architecture::MlLeaksCnn => Model::MlLeaksCnn(MlLeaksCnn::new(i, c, p, device)),
            Architecture::Resnet20 => Model::Resnet20(ResNet20::new(i, c, p, device)),
            Architecture::Vgg16Bn => Model::Vgg16Bn(Vgg16Bn::new(i, c, p, device)),
            Architecture::MobilenetV2 => Model::MobilenetV2(MobileNetV2::new(i, c, p, device)),
            Architecture::Mlp => Model::Mlp(Mlp::new(i, c, p, device)),
        })
    }

    /// Builds the model and loads burnpack weights into it, checking they fit exactly.
    pub fn load_bytes(&self, bytes: Vec<u8>, device: &Device) -> Result<Model, CoreError> {
        let bad = |e: &dyn std::fmt::Display| CoreError::BadWeights {
            arch: self.arch.to_string(),
            reason: e.to_string(),
        };
        // Building the model may draw initial weights from burn's process-wide RNG before the
        // record replaces them: under the lock, so a seeded stream on another thread (a lab
        // head, a shadow) is not advanced in the middle of its draws.
        let _rng = crate::rng::backend_lock();
        let skeleton = self.init(device)?;
        // Checked before burn reads them (`crate::weights`): in the page a panic would abort
        // the module. Weights stored at f16 (the web bundle's, [`Self::weights_to_f16`]) load
        // into the f32 model; f32 weights are unchanged.
        crate::weights::load_record(bytes, skeleton).map_err(|e| bad(&e))
    }

    /// Re-encodes burnpack weights with every f32 tensor stored as f16: half the bytes, for
    /// the web bundle (`mia export --weights f16`, which checks the attacks' AUCs do not move).
    /// [`Self::load_bytes`] casts them back to f32; values round to f16's 11-bit mantissa.
    pub fn weights_to_f16(&self, bytes: Vec<u8>) -> Result<Vec<u8>, CoreError> {
        use burn_pack::{DType, Reader, Writer};
        let bad = |e: &dyn std::fmt::Display| CoreError::BadWeights {
            arch: self.arch.to_string(),
            reason: e.to_string(),
        };
        crate::weights::check(&bytes).map_err(|e| bad(&e))?;
        let tensors = Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .and_then(Reader::into_tensors)
            .map_err(|e| bad(&e))?;
        let mut out = Vec::with_capacity(tensors.len());
        for t in tensors {
            let (path, dtype, shape, id, data) = t.into_parts().map_err(|e| bad(&e))?;
            let data = TensorData::from_bytes(data, shape, dtype);
            let data = if dtype == DType::F32 { data.convert_dtype(DType::F16) } else { data };
            let (bytes, shape, dtype) = data.into_parts();
            out.push(burn_pack::Tensor::new(path, dtype, shape, id, bytes));
        }
        let bytes = Writer::new(out).into_bytes().map_err(|e| bad(&e))?.to_vec();
        // What is shipped must load. On flex, named: the default device of a build that also
        // has wgpu is wgpu, and a software Vulkan driver (lavapipe) could crash the process at
        // exit while its JIT threads still ran (seen as `mia export` dying after its output).
        self.load_bytes(bytes.clone(), &Device::flex())?;
        Ok(bytes)
    }
}

/// A model of any architecture.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Model {
    /// See [`SmallCnn`].
    SmallCnn(SmallCnn),
    /// See [`MlLeaksCnn`].
    MlLeaksCnn(MlLeaksCnn),
    /// See [`ResNet20`].
    Resnet20(ResNet20),
    /// See [`Vgg16Bn`].
    Vgg16Bn(Vgg16Bn),
    /// See [`MobileNetV2`].
    MobilenetV2(MobileNetV2),
    /// See [`Mlp`].
    Mlp(Mlp),
}

impl Model {
    /// `[batch, c, h, w]` → `[batch, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::SmallCnn(m) => m.forward(x),
            Model::MlLeaksCnn(m) => m.forward(x),
            Model::Resnet20(m) => m.forward(x),
            Model::Vgg16Bn(m) => m.forward(x),
            Model::MobilenetV2(m) => m.forward(x),
            Model::Mlp(m) => m.forward(x),
        }
    }
}

impl Model {
    /// `[batch, c, h, w]` → `[batch, d]`: the input of the last layer (the features lab mode
    /// trains a new head on), for the architectures that expose them (the small CNN: 128).
    pub fn features(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        match self {
            Model::SmallCnn(m) => Some(m.features(x)),
            _ => None,
        }
    }

    /// Width of [`Self::features`], for the architectures that expose them.
    pub fn feature_dim(&self) -> Option<usize> {
        match self {
            Model::SmallCnn(m) => Some(m.feature_dim()),
            _ => None,
        }
    }
}

/// `[b, c, h, w]` → `[b, c*h*w]`.
pub(crate) fn flatten(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c * h * w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn the_feature_width_is_that_of_the_features() {
        let device = Device::flex();
        let input = InputSpec::new(3, 8, 8);
        let cnn = ModelConfig::new(Architecture::SmallCnn, input, 10).init(&device).unwrap();
        let x = Tensor::<4>::zeros([2, 3, 8, 8], &device);
        assert_eq!(cnn.feature_dim(), Some(cnn.features(x).unwrap().dims()[1]));
        let mlp = ModelConfig::new(Architecture::Mlp, InputSpec::new(1, 1, 6), 3).init(&device);
        assert_eq!(mlp.unwrap().feature_dim(), None);
    }

    #[test]
    fn every_architecture_maps_inputs_to_class_logits() {
        let device = Device::flex();
        for arch in Architecture::ALL {
            let input = if arch == Architecture::Mlp {
                InputSpec::new(1, 1, 12)
            } else {
                InputSpec::new(3, 32, 32)
            };
            let model = ModelConfig::new(arch, input, 10).with_dropout(0.1).init(&device).unwrap();
            let x = Tensor::<4>::zeros([2, input.channels, input.height, input.width], &device);
            assert_eq!(model.valid().forward(x).dims(), [2, 10], "{arch}");
            assert_eq!(arch.name().parse::<Architecture>().unwrap(), arch);
        }
        // Grayscale 28×28 works for the image models too.
        for arch in [Architecture::SmallCnn, Architecture::MlLeaksCnn, Architecture::Resnet20] {
            let input = InputSpec::new(1, 28, 28);
            let model = ModelConfig::new(arch, input, 10).init(&device).unwrap();
            let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
            assert_eq!(model.forward(x).dims(), [1, 10], "{arch}");
        }
    }

    #[test]
    fn weights_round_trip_and_bad_weights_are_errors() {
        let device = Device::flex();
        let config = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 28, 28), 10);
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::ones([1, 1, 28, 28], &device);
        let before = model.forward(x.clone()).into_data();
        let bytes = model.into_record().into_bytes().unwrap().to_vec();
        let loaded = config.load_bytes(bytes.clone(), &device).unwrap();
        assert_eq!(loaded.forward(x).into_data(), before);
        // Truncated, garbage, and weights of another architecture are all errors.
        assert!(config.load_bytes(bytes[..bytes.len() / 2].to_vec(), &device).is_err());
        assert!(config.load_bytes(b"not weights".to_vec(), &device).is_err());
        let other = ModelConfig::new(Architecture::MlLeaksCnn, InputSpec::new(1, 28, 28), 10);
        assert!(other.load_bytes(bytes, &device).is_err());
        assert!(
            ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 1, 5), 10)
                .init(&device)
                .is_err()
        );
    }

    #[test]
    fn f16_weights_are_half_the_bytes_and_load_rounded() {
        let device = Device::flex();
        let config = ModelConfig::new(Architecture::SmallCnn, InputSpec::new(1, 28, 28), 10);
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::ones([1, 1, 28, 28], &device);
        let before: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
        let bytes = model.into_record().into_bytes().unwrap().to_vec();
        let half = config.weights_to_f16(bytes.clone()).unwrap();
        assert!(half.len() < bytes.len() * 6 / 10, "{} of {} bytes", half.len(), bytes.len());
        let after: Vec<f32> = config
            .load_bytes(half.clone(), &device)
            .unwrap()
            .forward(x)
            .into_data()
            .try_to_vec()
            .unwrap();
        let diff = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // Rounded to f16 (an 11-bit mantissa): close, and not the same.
        assert!(diff > 0.0 && diff < 1e-2, "largest logit change {diff}");
        assert_eq!(config.weights_to_f16(half.clone()).unwrap(), half, "f16 stays f16");
        assert!(config.weights_to_f16(bytes[..bytes.len() / 2].to_vec()).is_err());
        assert!(config.weights_to_f16(b"not weights".to_vec()).is_err());
    }
}
