//! Binary attack models for the shadow-classifier attacks (Shokri et al. 2017; ML-Leaks,
//! Salem et al. 2019): logistic regression and a one-hidden-layer MLP, trained with Adam on
//! standardised features and a balanced member/non-member sample. Plain Rust, deterministic
//! given a seed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which attack model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierKind {
    /// Logistic regression.
    Logistic,
    /// One hidden ReLU layer of 64 units (ML-Leaks uses 64).
    Mlp,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainSettings {
    /// Passes over the data.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Mini-batch size.
    pub batch: usize,
    /// Seed of initialisation and order.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self { epochs: 30, lr: 3e-3, batch: 128, seed: 0 }
    }
}

/// A fitted attack model; [`Classifier::score`] is the member logit.
#[derive(Debug, Clone)]
pub struct Classifier {
    dim: usize,
    hidden: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Parameters: `w1 [hidden × dim]`, `b1 [hidden]`, `w2 [hidden]`, `b2` (logistic
    /// regression: hidden = 0 and `w2` has `dim` entries on the inputs directly).
    params: Vec<f32>,
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.t += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grads[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grads[i] * grads[i];
            params[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

fn sigmoid_loss_grad(logit: f32, y: bool) -> f32 {
    // d/dlogit of binary cross-entropy.
    let p = 1.0 / (1.0 + (-logit).exp());
    p - f32::from(u8::from(y))
}

impl Classifier {
    /// Fits a model on row-major features `x [n × dim]` and labels `y` (true = member). The
    /// larger class is subsampled so both classes weigh the same.
    pub fn fit(x: &[f32], dim: usize, y: &[bool], kind: ClassifierKind, s: TrainSettings) -> Self {
        let n = y.len();
        let mut mean = vec![0f32; dim];
        let mut std = vec![0f32; dim];
        for row in x.chunks(dim) {
            row.iter().zip(&mut mean).for_each(|(v, m)| *m += v / n.max(1) as f32);
        }
        for row in x.chunks(dim) {
            row.iter().zip(&mean).zip(&mut std).for_each(|((v, m), s)| {
                *s += (v - m) * (v - m) / n.max(1) as f32;
            });
        }
        std.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
        let hidden = match kind {
            ClassifierKind::Logistic => 0,
            ClassifierKind::Mlp => 64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let count = if hidden == 0 { dim + 1 } else { hidden * dim + 2 * hidden + 1 };
        let scale = 1.0 / (dim as f32).sqrt();
        let params: Vec<f32> = (0..count)
            .map(|_| {
                if hidden == 0 {
                    0.0
                } else {
                    (rand::Rng::random::<f32>(&mut rng) * 2.0 - 1.0) * scale
                }
            })
            .collect();
        let mut model = Classifier { dim, hidden, mean, std, params };

        let (mut pos, mut neg): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| y[i]);
        pos.shuffle(&mut rng);
        neg.shuffle(&mut rng);
        let keep = pos.len().min(neg.len());
        let mut order: Vec<usize> = pos[..keep].iter().chain(&neg[..keep]).copied().collect();
        let mut adam = Adam { m: vec![0.0; count], v: vec![0.0; count], t: 0 };
        let mut grads = vec![0f32; count];
        let mut z = vec![0f32; dim];
        let mut h = vec![0f32; hidden];
        for _ in 0..s.epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(s.batch.max(1)) {
                grads.iter_mut().for_each(|g| *g = 0.0);
                for &i in chunk {
                    model.standardise(&x[i * dim..(i + 1) * dim], &mut z);
                    let logit = model.forward(&z, &mut h);
                    let g = sigmoid_loss_grad(logit, y[i]) / chunk.len() as f32;
                    model.backward(&z, &h, g, &mut grads);
                }
                adam.step(&mut model.params, &grads, s.lr);
            }
        }
        model
    }

    fn standardise(&self, row: &[f32], z: &mut [f32]) {
        for j in 0..self.dim {
            z[j] = (row[j] - self.mean[j]) / self.std[j];
        }
    }

    fn forward(&self, z: &[f32], h: &mut [f32]) -> f32 {
        let (d, hd, p) = (self.dim, self.hidden, &self.params);
        if hd == 0 {
            return z.iter().zip(p).map(|(a, b)| a * b).sum::<f32>() + p[d];
        }
        let (w1, rest) = p.split_at(hd * d);
        let (b1, rest) = rest.split_at(hd);
        let (w2, b2) = rest.split_at(hd);
        for u in 0..hd {
            let a = w1[u * d..(u + 1) * d].iter().zip(z).map(|(w, x)| w * x).sum::<f32>() + b1[u];
            h[u] = a.max(0.0);
        }
        h.iter().zip(w2).map(|(a, b)| a * b).sum::<f32>() + b2[0]
    }

    fn backward(&self, z: &[f32], h: &[f32], g: f32, grads: &mut [f32]) {
        let (d, hd) = (self.dim, self.hidden);
        if hd == 0 {
            for j in 0..d {
                grads[j] += g * z[j];
            }
            grads[d] += g;
            return;
        }
        let w2 = &self.params[hd * d + hd..hd * d + 2 * hd];
        for u in 0..hd {
            if h[u] > 0.0 {
                let gu = g * w2[u];
                for j in 0..d {
                    grads[u * d + j] += gu * z[j];
                }
                grads[hd * d + u] += gu;
            }
            grads[hd * d + hd + u] += g * h[u];
        }
        grads[hd * d + 2 * hd] += g;
    }

    /// A logistic regression as weights on the raw (unstandardised) features and a bias:
    /// `score(x) = w·x + b`. `None` for the MLP.
    pub fn linear(&self) -> Option<(Vec<f32>, f32)> {
        if self.hidden != 0 {
            return None;
        }
        let w: Vec<f32> = (0..self.dim).map(|j| self.params[j] / self.std[j]).collect();
        let b = self.params[self.dim] - (0..self.dim).map(|j| w[j] * self.mean[j]).sum::<f32>();
        Some((w, b))
    }

    /// Member logits of row-major features `x [n × dim]` (higher = more likely a member).
    pub fn score(&self, x: &[f32]) -> Vec<f32> {
        let mut z = vec![0f32; self.dim];
        let mut h = vec![0f32; self.hidden];
        x.chunks(self.dim)
            .map(|row| {
                self.standardise(row, &mut z);
                self.forward(&z, &mut h)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members sit on one side of a line (LR) or inside a ring (needs the MLP).
    fn data(ring: bool) -> (Vec<f32>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..2000 {
            let a: f32 = rand::Rng::random::<f32>(&mut rng) * 4.0 - 2.0;
            let b: f32 = rand::Rng::random::<f32>(&mut rng) * 4.0 - 2.0;
            x.extend([a, b]);
            y.push(if ring { a * a + b * b < 1.5 } else { a + 0.5 * b > 0.3 });
        }
        (x, y)
    }

    fn accuracy(m: &Classifier, x: &[f32], y: &[bool]) -> f32 {
        let s = m.score(x);
        s.iter().zip(y).filter(|(s, y)| (**s > 0.0) == **y).count() as f32 / y.len() as f32
    }

    #[test]
    fn logistic_regression_learns_a_line_and_the_mlp_a_ring() {
        let s = TrainSettings { epochs: 40, ..TrainSettings::default() };
        let (x, y) = data(false);
        let lr = Classifier::fit(&x, 2, &y, ClassifierKind::Logistic, s);
        assert!(accuracy(&lr, &x, &y) > 0.97, "{}", accuracy(&lr, &x, &y));
        let (w, b) = lr.linear().unwrap();
        let folded = w[0] * x[0] + w[1] * x[1] + b;
        assert!((folded - lr.score(&x[..2])[0]).abs() < 1e-4);
        let (x, y) = data(true);
        let lr = Classifier::fit(&x, 2, &y, ClassifierKind::Logistic, s);
        let mlp = Classifier::fit(&x, 2, &y, ClassifierKind::Mlp, s);
        assert!(accuracy(&lr, &x, &y) < 0.75, "a line cannot fit a ring");
        assert!(accuracy(&mlp, &x, &y) > 0.93, "{}", accuracy(&mlp, &x, &y));
    }
}
