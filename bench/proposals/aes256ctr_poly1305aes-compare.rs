// Checks bench/proposals/aes256ctr_poly1305aes-keys-once.patch against the published crate and
// times both: a throwaway crate whose Cargo.toml has
//   published = { package = "aes256ctr_poly1305aes", version = "0.2.1", features = ["std"] }
//   patched = { package = "aes256ctr_poly1305aes", path = "<the crate with the patch applied>", features = ["std"] }
// and this file as src/main.rs; `cargo run --release`. Not built by the workspace.
use published::aead::AeadInPlace;
use std::time::Instant;
fn main() {
    let mut raw = [0u8; 64];
    for (i, b) in raw.iter_mut().enumerate() { *b = (i * 29 + 3) as u8; }
    let a = published::Aes256CtrPoly1305Aes::new(published::Key::from_slice(&raw));
    let b = patched::Aes256CtrPoly1305Aes::new(patched::Key::from_slice(&raw));
    // Equivalence: every length 0..=4200 and a few large ones, both directions, and tampering.
    let mut lens: Vec<usize> = (0..=4200).collect();
    lens.extend([65536, 65537, 1 << 20, (8 << 20) + 5]);
    for &len in &lens {
        let msg: Vec<u8> = (0..len).map(|j| (j * 131 + len) as u8).collect();
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&(len as u64).to_le_bytes());
        let (mut x, mut y) = (msg.clone(), msg.clone());
        let ta = a.encrypt_in_place_detached(published::Nonce::from_slice(&nonce), &[], &mut x).unwrap();
        let tb = b.encrypt_in_place_detached(patched::Nonce::from_slice(&nonce), &[], &mut y).unwrap();
        assert_eq!(x, y, "{len}"); assert_eq!(ta.as_slice(), tb.as_slice(), "{len}");
        let mut z = x.clone();
        b.decrypt_in_place_detached(patched::Nonce::from_slice(&nonce), &[], &mut z, patched::Tag::from_slice(&ta)).unwrap();
        assert_eq!(z, msg);
        if len > 0 {
            let mut t = x.clone(); t[len / 2] ^= 1;
            assert!(b.decrypt_in_place_detached(patched::Nonce::from_slice(&nonce), &[], &mut t, patched::Tag::from_slice(&ta)).is_err());
        }
    }
    println!("equivalent on {} lengths", lens.len());
    let n = 130_000;
    let msgs: Vec<([u8; 16], Vec<u8>, [u8; 16])> = (0..n).map(|i| {
        let len = 1500 + (i * 37) % 1200;
        let mut m: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        let nonce = [(i % 251) as u8; 16];
        let tag = a.encrypt_in_place_detached(published::Nonce::from_slice(&nonce), &[], &mut m).unwrap();
        (nonce, m, tag.into())
    }).collect();
    let mut buf = Vec::new();
    for round in 0..5 {
        let t = Instant::now();
        for (nonce, m, tag) in &msgs { buf.clear(); buf.extend_from_slice(m); a.decrypt_in_place_detached(published::Nonce::from_slice(nonce), &[], &mut buf, published::Tag::from_slice(tag)).unwrap(); }
        let pa = t.elapsed();
        let t = Instant::now();
        for (nonce, m, tag) in &msgs { buf.clear(); buf.extend_from_slice(m); b.decrypt_in_place_detached(patched::Nonce::from_slice(nonce), &[], &mut buf, patched::Tag::from_slice(tag)).unwrap(); }
        println!("round {round}: 130,000 messages of 1.5-2.7 KB opened: published {:?}, patched {:?}", pa, t.elapsed());
    }
}
