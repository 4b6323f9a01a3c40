//! Hash maps that give memory back. A `HashMap` never shrinks by itself: a burst of processes
//! or flows would leave every table at its high-water mark for the life of collectd.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Maps this small stay as they are: shrinking them saves nothing worth the rehash.
const SHRINK_ABOVE: usize = 1024;

/// Shrinks a map that is less than a quarter full. Half the new capacity stays free, so a map
/// at a steady size is not shrunk and grown again over and over.
pub fn shrink_mostly_empty<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > SHRINK_ABOVE && map.len() < map.capacity() / 4 {
        map.shrink_to((map.len() * 2).max(SHRINK_ABOVE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mostly_empty_map_shrinks_a_busy_one_does_not() {
        let mut map: HashMap<u32, u64> = (0..100_000).map(|i| (i, 0)).collect();
        let full = map.capacity();
        shrink_mostly_empty(&mut map);
        assert_eq!(map.capacity(), full, "full: left alone");
        map.retain(|&k, _| k < 1000);
        shrink_mostly_empty(&mut map);
        assert!(map.capacity() < full / 16, "{} of {full}", map.capacity());
        assert!(map.capacity() >= 2000, "room to grow: {}", map.capacity());
        assert_eq!(map.len(), 1000);
        let mut small: HashMap<u32, u64> = HashMap::with_capacity(900);
        let before = small.capacity();
        shrink_mostly_empty(&mut small);
        assert_eq!(small.capacity(), before, "small maps are left alone");
    }
}
