//! rustic_cdc's rolling hash (Rabin fingerprints over a 64-byte window, restic's chunker),
//! looked for at four places of a stream at once.
//!
//! Each byte's step waits on the table lookup of the step before, so one stream is hashed at
//! one byte per lookup latency (2.3 ns a byte on this project's machines: 39% of a PostgreSQL
//! backup's CPU). But once the window holds 64 bytes of the stream, the hash is a function of
//! those 64 bytes alone: each step removes the byte that leaves the window (`out`) and adds the
//! one that enters, and the result is reduced modulo the polynomial, so it is the same whatever
//! came before. So a stretch is split into four lanes, each started afresh on the 64 bytes
//! before it, and a core runs the four independent chains side by side. The first lane that
//! finds a cut decides; the lanes are short ([`LANE`]) so that little work is thrown away
//! when an early lane finds one.

use rustic_cdc::{Polynom, Polynom64, Rabin64};

/// The bytes the hash covers (rustic_cdc's window of 2^6).
pub(super) const WINDOW: usize = 64;
/// The positions each lane covers in one round: long enough that restarting a lane (64 steps)
/// costs little, short enough that a cut found early in a round wastes little.
const LANE: usize = 4096;
const LANES: usize = 4;

/// The tables of the repository's polynomial, built once.
pub(super) struct Prints {
    out: [Polynom64; 256],
    reduce: [Polynom64; 256],
    shift: u32,
}

impl Prints {
    pub(super) fn new(poly: &Polynom64) -> Self {
        let degree = u32::try_from(poly.degree()).unwrap_or(0);
        Self {
            out: Rabin64::calculate_out_table(WINDOW, poly),
            reduce: Rabin64::calculate_mod_table(poly),
            // rustic_cdc's shift, for the polynomials a repository can have (degree 53);
            // `new` of the chunker refuses others.
            shift: degree.saturating_sub(8),
        }
    }

    /// Whether the repository's polynomial is one these tables serve (as rustic_cdc's own).
    pub(super) fn serves(poly: &Polynom64) -> bool {
        (9..64).contains(&poly.degree())
    }

    /// One step, exactly rustic_cdc's `slide`: `gone` leaves the window, `next` enters it.
    #[inline(always)]
    fn step(&self, hash: Polynom64, gone: u8, next: u8) -> Polynom64 {
        let hash = hash ^ self.out[usize::from(gone)];
        let top = self.reduce[((hash >> self.shift) & 255) as usize];
        ((hash << 8) | Polynom64::from(next)) ^ top
    }

    /// The hash of a fresh window after the 64 bytes of `window`.
    #[inline(always)]
    fn fill(&self, window: &[u8]) -> Polynom64 {
        window.iter().fold(0, |h, &b| self.step(h, 0, b))
    }

    /// `data` is 64 bytes of the stream, then the bytes to look at. The first of those whose
    /// window (it and the 63 before it) hashes with every bit of `mask` zero, as its offset
    /// from the 64th byte of `data`; none when there is no such byte.
    pub(super) fn find(&self, data: &[u8], mask: Polynom64) -> Option<usize> {
        if data.len() <= WINDOW {
            return None;
        }
        let mut at = WINDOW;
        while data.len() - at >= LANES * LANE {
            if let Some(found) = self.round(&data[at - WINDOW..at + LANES * LANE], mask) {
                return Some(at - WINDOW + found);
            }
            at += LANES * LANE;
        }
        // What is left: one lane.
        let mut hash = self.fill(&data[at - WINDOW..at]);
        for (p, (&gone, &next)) in data[at - WINDOW..].iter().zip(&data[at..]).enumerate() {
            hash = self.step(hash, gone, next);
            if hash & mask == 0 {
                return Some(at - WINDOW + p);
            }
        }
        None
    }

    /// Four lanes of [`LANE`] positions side by side over `data` (64 bytes, then the
    /// positions): the first position found, in stream order.
    fn round(&self, data: &[u8], mask: Polynom64) -> Option<usize> {
        let lane = |k: usize| &data[k * LANE..(k + 1) * LANE + WINDOW];
        let (l0, l1, l2, l3) = (lane(0), lane(1), lane(2), lane(3));
        let mut h = [
            self.fill(&l0[..WINDOW]),
            self.fill(&l1[..WINDOW]),
            self.fill(&l2[..WINDOW]),
            self.fill(&l3[..WINDOW]),
        ];
        let mut first = [usize::MAX; LANES];
        for p in 0..LANE {
            h[0] = self.step(h[0], l0[p], l0[p + WINDOW]);
            h[1] = self.step(h[1], l1[p], l1[p + WINDOW]);
            h[2] = self.step(h[2], l2[p], l2[p + WINDOW]);
            h[3] = self.step(h[3], l3[p], l3[p + WINDOW]);
            if (h[0] & mask == 0) | (h[1] & mask == 0) | (h[2] & mask == 0) | (h[3] & mask == 0) {
                for k in 0..LANES {
                    if h[k] & mask == 0 && first[k] == usize::MAX {
                        first[k] = p;
                    }
                }
                // Nothing later in this round can come before the first lane's find.
                if first[0] != usize::MAX {
                    break;
                }
            }
        }
        first
            .iter()
            .enumerate()
            .find(|&(_, &p)| p != usize::MAX)
            .map(|(k, &p)| k * LANE + p)
    }
}

#[cfg(test)]
mod tests {
    use rustic_cdc::RollingHash64;

    use super::*;
    use crate::repository::archive::tests::noise;

    /// restic's polynomial of its test repositories, and another of degree 53.
    const POLYS: [Polynom64; 2] = [0x003D_A335_8B4D_C173, 0x002B_2AA3_F7D5_B5E1];

    /// The first byte whose window hashes to zero under `mask`, by rustic_cdc itself, one
    /// byte at a time over the whole stream (its window full of the stream from byte 64 on).
    fn by_rustic(poly: &Polynom64, data: &[u8], mask: Polynom64) -> Option<usize> {
        let mut rabin = Rabin64::new_with_polynom(6, poly);
        for (i, &b) in data.iter().enumerate() {
            rabin.slide(b);
            if i >= WINDOW && rabin.hash & mask == 0 {
                return Some(i - WINDOW);
            }
        }
        None
    }

    #[test]
    fn the_lanes_find_what_rustics_own_hash_finds() {
        for poly in POLYS {
            assert!(Prints::serves(&poly));
            let prints = Prints::new(&poly);
            // Cuts rare (none at all in some streams), common (several in every lane of a
            // round: the earliest must win), at a lane's first and last position; lengths
            // around a round's; runs of one byte, where the hash never changes.
            for (bits, seed) in [(20, 1), (14, 2), (12, 3), (8, 4), (5, 5), (3, 6), (1, 7)] {
                let mask = (1 << bits) - 1;
                for len in [
                    WINDOW,
                    WINDOW + 1,
                    WINDOW + 100,
                    WINDOW + LANES * LANE - 1,
                    WINDOW + LANES * LANE,
                    WINDOW + LANES * LANE + 1,
                    WINDOW + 3 * LANES * LANE + 777,
                    1 << 20,
                ] {
                    let data = noise(len, seed * 31 + len as u64);
                    assert_eq!(
                        prints.find(&data, mask),
                        by_rustic(&poly, &data, mask),
                        "poly {poly:x}, mask {mask:x}, {len} bytes"
                    );
                    // Every later start as well, so the finds land everywhere in a round.
                    if len < 2 * WINDOW + LANES * LANE && bits <= 8 {
                        for skip in [1, 63, 64, 65, LANE - 1, LANE, LANE + 1] {
                            if let Some(tail) = data.get(skip..).filter(|t| t.len() >= WINDOW) {
                                assert_eq!(
                                    prints.find(tail, mask),
                                    by_rustic(&poly, tail, mask),
                                    "skip {skip}"
                                );
                            }
                        }
                    }
                }
            }
            let zeros = vec![0_u8; 3 * LANES * LANE];
            let sevens = vec![7_u8; 3 * LANES * LANE];
            for data in [&zeros, &sevens] {
                for mask in [1, 0xff, 0xf_ffff] {
                    assert_eq!(prints.find(data, mask), by_rustic(&poly, data, mask));
                }
            }
        }
    }

    /// The first lane's cut comes first even when another lane's comes earlier in its own
    /// stretch; a later lane's cut is found when the lanes before it have none.
    #[test]
    fn the_earliest_cut_of_a_round_wins() {
        let poly = POLYS[0];
        let prints = Prints::new(&poly);
        let cuts = |data: &[u8], mask| {
            (0..data.len() - WINDOW)
                .filter(|&p| prints.fill(&data[p + 1..p + 1 + WINDOW]) & mask == 0)
                .collect::<Vec<_>>()
        };
        let mask = 0xff;
        // A stream whose first lane's first cut comes after another lane's, each in its own
        // stretch.
        let (data, all) = (11..100)
            .map(|seed| {
                let data = noise(WINDOW + LANES * LANE, seed);
                let all = cuts(&data, mask);
                (data, all)
            })
            .find(|(_, all)| {
                let first_in = |k: usize| all.iter().find(|&&p| p / LANE == k).map(|p| p % LANE);
                first_in(0)
                    .is_some_and(|lane0| (1..LANES).any(|k| first_in(k).is_some_and(|p| p < lane0)))
            })
            .expect("such a stream among 89 seeds");
        assert_eq!(prints.find(&data, mask), Some(all[0]));
        assert_eq!(prints.find(&data, mask), by_rustic(&poly, &data, mask));

        // The first lane and a half of the second of one byte repeated (its hash never
        // cuts under this mask), then noise: the cut is the noise's first.
        let mut data = vec![7_u8; WINDOW + LANE + LANE / 2];
        assert_ne!(prints.fill(&data[..WINDOW]) & mask, 0, "pick another byte");
        data.extend(noise(3 * LANE, 12));
        let all = cuts(&data, mask);
        assert!(all[0] >= LANE + LANE / 2, "{}", all[0]);
        assert_eq!(prints.find(&data, mask), Some(all[0]));
        assert_eq!(prints.find(&data, mask), by_rustic(&poly, &data, mask));
    }
}
