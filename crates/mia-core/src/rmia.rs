//! RMIA (Zarifzadeh, Liu, Shokri & Chen, "Low-Cost High-Power Membership Inference Attacks",
//! ICML 2024).
//!
//! For a candidate `x` and population samples `z`:
//! `LR(x, z) = (Pr(x|θ) / Pr(x)) / (Pr(z|θ) / Pr(z))`, where `Pr(·|θ)` is the target model's
//! probability of the true label and `Pr(·)` its average over reference models.
//! `Score(x) = fraction of z with LR(x, z) ≥ γ`. Online, `Pr(x)` averages all reference models
//! (IN and OUT). Offline (OUT models only), `Pr(x)` is approximated as
//! `½((1 + a)·Pr_OUT(x) + (1 − a))`, the paper's linear fit of the missing IN models; `a` is
//! tuned on a reference model (see [`tune_a`]). Higher scores mean "more likely a member".

use crate::CoreError;

/// `Pr(x)` for the offline attack from the OUT average.
pub fn offline_prior(pr_out: f32, a: f32) -> f32 {
    0.5 * ((1.0 + a) * pr_out + (1.0 - a))
}

/// RMIA scores. `target_x[i] = Pr(x_i|θ)`, `prior_x[i] = Pr(x_i)`, and likewise for the
/// population samples `z`.
pub fn scores(
    target_x: &[f32],
    prior_x: &[f32],
    target_z: &[f32],
    prior_z: &[f32],
    gamma: f32,
) -> Result<Vec<f32>, CoreError> {
    if target_x.len() != prior_x.len() || target_z.len() != prior_z.len() || target_z.is_empty() {
        return Err(CoreError::Shape(
            "RMIA needs matching x and z arrays and at least one z".into(),
        ));
    }
    if gamma.is_nan() || gamma <= 0.0 {
        return Err(CoreError::Shape(format!("gamma {gamma} must be positive")));
    }
    let eps = 1e-30f64;
    let mut ratio_z: Vec<f64> =
        target_z.iter().zip(prior_z).map(|(&t, &p)| f64::from(t) / f64::from(p).max(eps)).collect();
    ratio_z.sort_by(f64::total_cmp);
    Ok(target_x
        .iter()
        .zip(prior_x)
        .map(|(&t, &p)| {
            let ratio_x = f64::from(t) / f64::from(p).max(eps);
            // LR ≥ γ  ⇔  ratio_z ≤ ratio_x / γ.
            let bound = ratio_x / f64::from(gamma);
            let count = ratio_z.partition_point(|&r| r <= bound);
            (count as f64 / ratio_z.len() as f64) as f32
        })
        .collect())
}

/// Chooses `a` for the offline attack: with one reference model treated as a target and the
/// others as OUT models, the `a` (from `grid`) whose scores give the highest AUC.
pub fn tune_a(
    grid: &[f32],
    auc_for: impl Fn(f32) -> Result<f64, CoreError>,
) -> Result<f32, CoreError> {
    let mut best = (f64::NEG_INFINITY, grid.first().copied().unwrap_or(1.0));
    for &a in grid {
        let auc = auc_for(a)?;
        if auc > best.0 {
            best = (auc, a);
        }
    }
    Ok(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_a_hand_computed_case() {
        // ratio_z = [0.5, 1.0, 2.0, 4.0]; x0 ratio 2.0, x1 ratio 0.4; γ = 1.
        let tz = [0.25, 0.5, 0.5, 0.8];
        let pz = [0.5, 0.5, 0.25, 0.2];
        let s = scores(&[0.8, 0.2], &[0.4, 0.5], &tz, &pz, 1.0).unwrap();
        assert_eq!(s, vec![0.75, 0.0]);
        // γ = 2: x0 needs ratio_z ≤ 1.0 → 2 of 4.
        assert_eq!(scores(&[0.8], &[0.4], &tz, &pz, 2.0).unwrap(), vec![0.5]);
        assert!(scores(&[0.8], &[0.4], &[], &[], 1.0).is_err());
        assert!(scores(&[0.8], &[0.4], &tz, &pz, 0.0).is_err());
    }

    #[test]
    fn offline_prior_interpolates_between_out_average_and_one() {
        assert_eq!(offline_prior(0.4, 1.0), 0.4);
        assert_eq!(offline_prior(0.4, 0.0), 0.7);
        assert_eq!(
            tune_a(&[0.0, 0.5, 1.0], |a| Ok(f64::from(1.0 - (a - 0.5).abs()))).unwrap(),
            0.5
        );
    }
}
