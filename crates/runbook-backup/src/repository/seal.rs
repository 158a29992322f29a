//! The repository's encryption, restic's: AES-256-CTR with a random 16-byte nonce as the
//! counter's first block, authenticated by Poly1305-AES over the ciphertext (the MAC key is
//! `r` and AES-128 of the nonce). A sealed message is nonce, ciphertext, MAC.
//!
//! Built here from the `aes`, `ctr` and `poly1305` crates rather than through
//! `aes256ctr_poly1305aes` (which rustic_core uses), because at one 4 KiB page per blob the
//! per-message costs decide: that crate expands both AES key schedules for every message,
//! feeds Poly1305 one 16-byte block at a time and decrypts in place after a copy. Here the
//! schedules are expanded once per key, the MAC takes the whole blocks through Poly1305's
//! parallel path, and a message is opened from the pack's bytes straight into its buffer
//! (BENCHMARKS.md, "The key expanded once"). The test below holds it to that crate's output.

use aes::{
    Aes128, Aes256,
    cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher, generic_array::GenericArray},
};
use poly1305::{Poly1305, universal_hash::UniversalHash};
use rand::RngCore;
use rustic_core::repofile::MasterKey;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// restic's counter mode: the whole 16-byte block counts, big-endian, as Go's `cipher.NewCTR`
/// does (`aes256ctr_poly1305aes` counts in the last 8 bytes only; the two differ only when
/// those 8 bytes of a random nonce wrap within one message).
type Ctr = ctr::Ctr128BE<Aes256>;

/// The repository's key, ready to seal and open messages.
pub(super) struct Seal {
    /// AES-256 for the data, its key schedule expanded once.
    data: Aes256,
    /// AES-128 for the MAC's per-message half (`k`), expanded once.
    mac_k: Aes128,
    /// The MAC's fixed half.
    mac_r: [u8; 16],
}

impl Drop for Seal {
    fn drop(&mut self) {
        // The expanded AES keys zeroize themselves (`aes`'s `zeroize` feature).
        self.mac_r.zeroize();
    }
}

impl Seal {
    pub(super) fn new(key: &MasterKey) -> std::result::Result<Self, String> {
        if key.encrypt.len() != 32 || key.mac.k.len() != 16 || key.mac.r.len() != 16 {
            return Err("the repository key has an unexpected length".into());
        }
        let mut raw = [0_u8; 64];
        raw[..32].copy_from_slice(&key.encrypt);
        raw[32..48].copy_from_slice(&key.mac.k);
        raw[48..].copy_from_slice(&key.mac.r);
        let seal = Self::from_bytes(&raw);
        raw.zeroize();
        Ok(seal)
    }

    /// The key of 64 bytes in restic's order: AES key, then the MAC's `k` and `r`.
    pub(super) fn from_bytes(raw: &[u8; 64]) -> Self {
        let mut mac_r = [0_u8; 16];
        mac_r.copy_from_slice(&raw[48..]);
        Self {
            data: Aes256::new(GenericArray::from_slice(&raw[..32])),
            mac_k: Aes128::new(GenericArray::from_slice(&raw[32..48])),
            mac_r,
        }
    }

    /// Poly1305-AES of `body` under `nonce`.
    fn mac(&self, nonce: &[u8; 16], body: &[u8]) -> [u8; 16] {
        let mut key = GenericArray::<u8, _>::default();
        key[..16].copy_from_slice(&self.mac_r);
        let mut s = GenericArray::clone_from_slice(nonce);
        self.mac_k.encrypt_block(&mut s);
        key[16..].copy_from_slice(&s);
        s.zeroize();
        let mut mac = Poly1305::new(&key);
        key.zeroize();
        // Whole blocks through the backend's parallel path (four at once with AVX2), then
        // the partial last block as `compute_unpadded` pads it: the same tag as one
        // `compute_unpadded` of everything.
        let (whole, tail) = body.split_at(body.len() / 16 * 16);
        mac.update_padded(whole);
        mac.compute_unpadded(tail).into()
    }

    fn keystream(&self, nonce: &[u8; 16]) -> Ctr {
        Ctr::from_core(ctr::CtrCore::inner_iv_init(
            self.data.clone(),
            GenericArray::from_slice(nonce),
        ))
    }

    /// `plain` sealed under a fresh random nonce.
    pub(super) fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0_u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with(&nonce, plain)
    }

    fn seal_with(&self, nonce: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + 32);
        out.extend_from_slice(nonce);
        out.resize(16 + plain.len(), 0);
        self.keystream(nonce)
            .apply_keystream_b2b(plain, &mut out[16..])
            // Invariant: `out[16..]` was just sized to `plain`, and one message of a
            // 128-bit counter cannot run out of keystream.
            .expect("the output is the input's length");
        let tag = self.mac(nonce, &out[16..]);
        out.extend_from_slice(&tag);
        out
    }

    pub(super) fn open(&self, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let mut plain = Vec::new();
        self.open_into(data, &mut plain)?;
        Ok(plain)
    }

    /// Opens `data` into `plain` (replacing what it held), reusing its allocation. Nothing is
    /// decrypted unless the MAC matches.
    pub(super) fn open_into(
        &self,
        data: &[u8],
        plain: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let Some((nonce, rest)) = data.split_first_chunk::<16>() else {
            return Err(format!("{}: a sealed message is too short", super::DAMAGED));
        };
        let Some((body, tag)) = rest.split_last_chunk::<16>() else {
            return Err(format!("{}: a sealed message is too short", super::DAMAGED));
        };
        if self.mac(nonce, body).ct_eq(tag).unwrap_u8() != 1 {
            return Err(format!("{}: a MAC does not match", super::DAMAGED));
        }
        plain.clear();
        plain.resize(body.len(), 0);
        self.keystream(nonce)
            .apply_keystream_b2b(body, plain)
            // Invariant: `plain` was just sized to `body`.
            .expect("the output is the input's length");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Seal;
    use aes256ctr_poly1305aes::{
        Aes256CtrPoly1305Aes, Key,
        aead::{AeadInPlace, Nonce},
    };

    fn key() -> [u8; 64] {
        std::array::from_fn(|i| (i * 29 + 3) as u8)
    }

    #[test]
    fn seals_as_the_crate_rustic_core_uses_and_opens_what_it_seals() {
        let raw = key();
        let ours = Seal::from_bytes(&raw);
        let theirs = Aes256CtrPoly1305Aes::new(Key::from_slice(&raw));
        let mut lengths: Vec<usize> = (0..=4200).collect();
        lengths.extend([65_536, 65_537, (1 << 20) + 5]);
        let mut plain = Vec::new();
        for len in lengths {
            let msg: Vec<u8> = (0..len).map(|j| (j * 131 + len) as u8).collect();
            let mut nonce = [0_u8; 16];
            nonce[..8].copy_from_slice(&(len as u64).to_le_bytes());
            nonce[15] = len as u8;

            let sealed = ours.seal_with(&nonce, &msg);
            let mut body = msg.clone();
            let tag = theirs
                .encrypt_in_place_detached(
                    Nonce::<Aes256CtrPoly1305Aes>::from_slice(&nonce),
                    &[],
                    &mut body,
                )
                .expect("encrypt");
            assert_eq!(sealed[..16], nonce, "{len}");
            assert_eq!(sealed[16..16 + len], body[..], "{len}");
            assert_eq!(sealed[16 + len..], tag[..], "{len}");

            ours.open_into(&sealed, &mut plain).expect("open");
            assert_eq!(plain, msg, "{len}");
        }
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused_and_nothing_is_decrypted() {
        let seal = Seal::from_bytes(&key());
        let sealed = seal.seal(b"four kibibytes of a page, or any message");
        assert!(seal.open(&sealed).is_ok());
        for at in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            let mut plain = b"what was here".to_vec();
            let err = seal.open_into(&bad, &mut plain).expect_err("tampered");
            assert!(err.contains("MAC does not match"), "{at}: {err}");
            assert_eq!(plain, b"what was here", "{at}");
        }
        for len in 0..32 {
            let err = seal.open(&sealed[..len]).expect_err("short");
            assert!(err.contains("too short"), "{len}: {err}");
        }
        // Another key's message.
        let other = Seal::from_bytes(&std::array::from_fn(|i| i as u8));
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn the_counter_carries_across_all_sixteen_bytes_as_restics_does() {
        use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
        let raw = key();
        let seal = Seal::from_bytes(&raw);
        // The last eight bytes at their maximum: the second block's counter carries into
        // the first eight, as Go's `cipher.NewCTR` counts.
        let mut nonce = [0xff_u8; 16];
        nonce[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let sealed = seal.seal_with(&nonce, &[0_u8; 32]);
        let aes = aes::Aes256::new(GenericArray::from_slice(&raw[..32]));
        let mut next = [1_u8, 2, 3, 4, 5, 6, 7, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut block = GenericArray::clone_from_slice(&next);
        aes.encrypt_block(&mut block);
        // Zeros encrypt to the keystream itself.
        assert_eq!(sealed[32..48], block[..]);
        next = nonce;
        let mut first = GenericArray::clone_from_slice(&next);
        aes.encrypt_block(&mut first);
        assert_eq!(sealed[16..32], first[..]);
    }
}
