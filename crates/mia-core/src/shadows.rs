//! Which candidates each shadow model trains on: the one keep-mask draw shared by the
//! native trainer's shadows (`mia shadows`) and lab mode's shadow heads in the page.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::rng::mix;

/// The keep-mask of shadow `index`: `in_size` of `n` candidates, drawn from `(seed, index)`,
/// or the complement of its partner's when `paired` and `index` is odd.
pub fn keep_mask(seed: u64, index: usize, n: usize, in_size: usize, paired: bool) -> Vec<bool> {
    let draw = if paired { index / 2 } else { index };
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed ^ 0x5AD0_5AD0, draw as u64)));
    let mut keep = vec![false; n];
    for &i in perm.iter().take(in_size) {
        keep[i] = true;
    }
    if paired && index % 2 == 1 {
        keep.iter_mut().for_each(|k| *k = !*k);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_splits_the_candidates_and_odd_counts_keep_the_rest_in_the_partner() {
        let (a, b) = (keep_mask(3, 0, 9, 4, true), keep_mask(3, 1, 9, 4, true));
        assert_eq!(a.iter().filter(|k| **k).count(), 4);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "complements");
    }
}
