//! One process's fd table as the inode index last read it: which slots are open, and which of
//! them hold sockets (and which). Kept by the inode index, on the resolver thread.
//!
//! Tables are often sparse — a process with fds 0 to 2 and one inherited at 255 — and the index
//! keeps one per process on the host, so a slot costs one bit and only a socket costs more
//! (its slot and inode). A slot-indexed `Vec<u64>` cost 2 KiB for such a process: 2 MiB for a
//! thousand of them.

/// What a slot held when last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Free,
    /// Open, but not a socket.
    Other,
    Socket(u64),
}

#[derive(Debug, Default, Clone)]
pub struct FdTable {
    /// Bit `s % 64` of word `s / 64`: slot `s` is open.
    open: Vec<u64>,
    /// The socket slots and their inodes, by slot.
    sockets: Vec<(u32, u64)>,
    /// Open slots.
    count: u64,
}

impl FdTable {
    pub fn get(&self, slot: u32) -> Slot {
        if !self.is_open(slot) {
            return Slot::Free;
        }
        match self.sockets.binary_search_by_key(&slot, |&(s, _)| s) {
            Ok(i) => self
                .sockets
                .get(i)
                .map_or(Slot::Other, |&(_, i)| Slot::Socket(i)),
            Err(_) => Slot::Other,
        }
    }

    /// Records what `slot` holds now; returns what it held.
    pub fn set(&mut self, slot: u32, value: Slot) -> Slot {
        let before = self.get(slot);
        if before == value {
            return before;
        }
        let (word, bit) = ((slot / 64) as usize, slot % 64);
        match value {
            Slot::Free => {
                if let Some(w) = self.open.get_mut(word) {
                    *w &= !(1 << bit);
                }
                self.count = self.count.saturating_sub(1);
                while self.open.last() == Some(&0) {
                    self.open.pop();
                }
            }
            Slot::Other | Slot::Socket(_) if before == Slot::Free => {
                if self.open.len() <= word {
                    self.open.resize(word + 1, 0);
                }
                if let Some(w) = self.open.get_mut(word) {
                    *w |= 1 << bit;
                }
                self.count += 1;
            }
            Slot::Other | Slot::Socket(_) => {}
        }
        let at = self.sockets.binary_search_by_key(&slot, |&(s, _)| s);
        match (at, value) {
            (Ok(i), Slot::Socket(inode)) => {
                if let Some(entry) = self.sockets.get_mut(i) {
                    entry.1 = inode;
                }
            }
            (Ok(i), Slot::Free | Slot::Other) => {
                self.sockets.remove(i);
            }
            // A full read lists slots in ascending order: this is a push.
            (Err(i), Slot::Socket(inode)) => self.sockets.insert(i, (slot, inode)),
            (Err(_), Slot::Free | Slot::Other) => {}
        }
        before
    }

    /// Open slots.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Free slots, lowest first, those past the highest open one included: where the next fds
    /// will be (the kernel hands out the lowest free number).
    pub fn free_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let inside = self.open.iter().enumerate().flat_map(|(w, &word)| {
            // Words of open slots only are skipped whole.
            (0..64u32)
                .take_while(move |_| word != u64::MAX)
                .filter(move |bit| word & (1 << bit) == 0)
                .map(move |bit| w as u32 * 64 + bit)
        });
        let past = (self.open.len() as u32).saturating_mul(64)..=u32::MAX;
        inside.chain(past)
    }

    /// The sockets held and one slot of each (slot order).
    pub fn sockets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.sockets.iter().copied()
    }

    /// A slot holding `inode`, if any (a socket `dup`ed into several slots has several).
    pub fn slot_of(&self, inode: u64) -> Option<u32> {
        self.sockets
            .iter()
            .find(|&&(_, i)| i == inode)
            .map(|&(slot, _)| slot)
    }

    fn is_open(&self, slot: u32) -> bool {
        self.open
            .get((slot / 64) as usize)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Heap bytes held, for the size test and estimates.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.open.capacity() * 8 + self.sockets.capacity() * std::mem::size_of::<(u32, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_set_read_and_freed() {
        let mut t = FdTable::default();
        assert_eq!(t.get(5), Slot::Free);
        assert_eq!(t.set(0, Slot::Other), Slot::Free);
        assert_eq!(t.set(3, Slot::Socket(100)), Slot::Free);
        assert_eq!(t.set(200, Slot::Socket(200)), Slot::Free);
        assert_eq!(t.count(), 3);
        assert_eq!(t.get(3), Slot::Socket(100));
        assert_eq!(t.get(200), Slot::Socket(200));
        assert_eq!(t.get(0), Slot::Other);
        // Reused by another socket, then by a file: the count stays.
        assert_eq!(t.set(3, Slot::Socket(101)), Slot::Socket(100));
        assert_eq!(t.set(3, Slot::Other), Slot::Socket(101));
        assert_eq!(t.count(), 3);
        assert_eq!(t.sockets().collect::<Vec<_>>(), [(200, 200)]);
        assert_eq!(t.set(200, Slot::Free), Slot::Socket(200));
        assert_eq!(t.set(200, Slot::Free), Slot::Free);
        assert_eq!(t.count(), 2);
        assert_eq!(t.open.len(), 1, "trailing empty words are dropped");
    }

    #[test]
    fn free_slots_run_lowest_first_and_past_the_end() {
        let mut t = FdTable::default();
        for slot in (0..70).filter(|s| *s != 5 && *s != 66) {
            t.set(slot, Slot::Other);
        }
        let free: Vec<u32> = t.free_slots().take(4).collect();
        assert_eq!(free, [5, 66, 70, 71]);
        assert_eq!(
            FdTable::default().free_slots().take(2).collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[test]
    fn dup_and_slot_of() {
        let mut t = FdTable::default();
        t.set(4, Slot::Socket(9));
        t.set(7, Slot::Socket(9));
        t.set(4, Slot::Free);
        assert_eq!(t.slot_of(9), Some(7));
        assert_eq!(t.slot_of(8), None);
    }

    #[test]
    fn a_sparse_table_is_small() {
        // fds 0-2 and an inherited 255: four bits' words and no socket list.
        let mut t = FdTable::default();
        for slot in [0, 1, 2, 255] {
            t.set(slot, Slot::Other);
        }
        assert!(t.heap_bytes() <= 64, "{} bytes", t.heap_bytes());
    }
}
