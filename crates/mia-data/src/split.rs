//! Deterministic experiment splits. From a seed, the dataset's pool is partitioned into the
//! target's members (its training set), target non-members (never trained on; the attack's
//! negatives), a test set (utility), an optional validation set (early stopping) and the
//! shadow/reference pool the attacker draws from. The split is saved as `split.json` with a
//! SHA-256 over its content, so later tools can tell exactly who is a member.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DataError;

/// Requested sizes; `None` means the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Target members.
    pub members: usize,
    /// Target non-members (default: as many as members).
    pub non_members: Option<usize>,
    /// Test set (default: min(5000, members), at least 1).
    pub test: Option<usize>,
    /// Validation set for early stopping (default 0).
    pub validation: usize,
}

/// A saved partition of a pool of `pool_size` examples (indices into the dataset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Format version.
    pub version: u32,
    /// Dataset name.
    pub dataset: String,
    /// Examples in the pool.
    pub pool_size: usize,
    /// Seed the permutation was drawn from.
    pub seed: u64,
    /// Counts per part, for humans.
    pub counts: SplitCounts,
    /// Target training set.
    pub members: Vec<usize>,
    /// Held out from the target; attack negatives.
    pub non_members: Vec<usize>,
    /// Utility evaluation set.
    pub test: Vec<usize>,
    /// Early-stopping validation set (may be empty).
    pub validation: Vec<usize>,
    /// Everything else: the attacker's shadow/reference pool.
    pub shadow_pool: Vec<usize>,
    /// SHA-256 (hex) of the parts above.
    pub sha256: String,
}

/// Sizes of each part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Members.
    pub members: usize,
    /// Non-members.
    pub non_members: usize,
    /// Test.
    pub test: usize,
    /// Validation.
    pub validation: usize,
    /// Shadow pool.
    pub shadow_pool: usize,
}

impl Split {
    /// Draws a split of `pool_size` examples.
    pub fn draw(
        dataset: &str,
        pool_size: usize,
        sizes: SplitSizes,
        seed: u64,
    ) -> Result<Self, DataError> {
        let non_members = sizes.non_members.unwrap_or(sizes.members);
        let test = sizes.test.unwrap_or(sizes.members.clamp(1, 5000));
        let need = sizes.members + non_members + test + sizes.validation;
        let err = |reason: String| DataError::Split { pool: pool_size, reason };
        if sizes.members == 0 || test == 0 {
            return Err(err("members and test must be at least 1".into()));
        }
        if need > pool_size {
            return Err(err(format!(
                "{} members + {non_members} non-members + {test} test + {} validation = {need} is more than the pool",
                sizes.members, sizes.validation
            )));
        }
        let mut perm: Vec<usize> = (0..pool_size).collect();
        perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let mut rest = perm.into_iter();
        let mut take = |n: usize| -> Vec<usize> { rest.by_ref().take(n).collect() };
        let members = take(sizes.members);
        let non_members = take(non_members);
        let test = take(test);
        let validation = take(sizes.validation);
        let shadow_pool = take(usize::MAX);
        let mut split = Split {
            version: 1,
            dataset: dataset.to_string(),
            pool_size,
            seed,
            counts: SplitCounts {
                members: members.len(),
                non_members: non_members.len(),
                test: test.len(),
                validation: validation.len(),
                shadow_pool: shadow_pool.len(),
            },
            members,
            non_members,
            test,
            validation,
            shadow_pool,
            sha256: String::new(),
        };
        split.sha256 = split.digest();
        Ok(split)
    }

    /// SHA-256 of the dataset name, pool size and every part, in order.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.dataset.as_bytes());
        h.update((self.pool_size as u64).to_le_bytes());
        for part in
            [&self.members, &self.non_members, &self.test, &self.validation, &self.shadow_pool]
        {
            h.update((part.len() as u64).to_le_bytes());
            for &i in part {
                h.update((i as u64).to_le_bytes());
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Writes `split.json`.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let json = serde_json::to_string(self).map_err(|e| DataError::Invalid(e.to_string()))?;
        mia_core::files::write_atomic(path, json.as_bytes()).map_err(|e| DataError::io(path, e))
    }

    /// Reads and verifies `split.json` (hash, index ranges, disjointness).
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let split: Split =
            serde_json::from_str(&text).map_err(|e| DataError::corrupt(path, e.to_string()))?;
        if split.digest() != split.sha256 {
            return Err(DataError::corrupt(
                path,
                "hash does not match the content (edited or damaged)",
            ));
        }
        let mut seen = vec![false; split.pool_size];
        for &i in split
            .members
            .iter()
            .chain(&split.non_members)
            .chain(&split.test)
            .chain(&split.validation)
            .chain(&split.shadow_pool)
        {
            match seen.get_mut(i) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(DataError::corrupt(
                        path,
                        format!("index {i} is out of range or repeated"),
                    ));
                }
            }
        }
        Ok(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_disjoint_deterministic_and_verified() {
        let sizes = SplitSizes { members: 30, non_members: None, test: Some(10), validation: 5 };
        let a = Split::draw("toy", 100, sizes, 7).unwrap();
        assert_eq!(a, Split::draw("toy", 100, sizes, 7).unwrap());
        assert_ne!(a.members, Split::draw("toy", 100, sizes, 8).unwrap().members);
        assert_eq!((a.counts.non_members, a.counts.shadow_pool), (30, 25));
        let mut all: Vec<usize> =
            [&a.members, &a.non_members, &a.test, &a.validation, &a.shadow_pool]
                .into_iter()
                .flatten()
                .copied()
                .collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("split.json");
        a.save(&p).unwrap();
        assert_eq!(Split::load(&p).unwrap(), a);
        let mut tampered = a.clone();
        tampered.members[0] = tampered.non_members[0];
        std::fs::write(&p, serde_json::to_string(&tampered).unwrap()).unwrap();
        assert!(Split::load(&p).is_err());
        assert!(Split::draw("toy", 50, sizes, 7).is_err());
    }
}
