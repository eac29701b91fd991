//! What a stranger's handshake messages carry once decrypted, as a node reads them: messages of
//! the handshake's codec (`u16be(len) || message`, 1 KiB at most before the peer proved its key),
//! the first checked as a `Hello` (chain, allowed key, not ourselves), the second decoded as the
//! proof and verified over the handshake hash and both keys. The Noise messages themselves are
//! parsed by `snow`, which its own project fuzzes; a fuzzer could not get past their encryption.
#![no_main]

use bytes::BytesMut;
use kubechain_fuzz::seeds::HANDSHAKE_HASH;
use kubechain_fuzz::{CHAIN_ID, fixture};
use kubechain_network::{Credentials, Hello, binding, check_hello, handshake_codec};
use kubechain_types::encoding::{decode, encode};
use kubechain_types::{Domain, Signature};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let fixture = fixture();
    let key = &fixture.validator_keys[0];
    let me = key.public_key();
    let accepts = |peer: &kubechain_types::PublicKey| fixture.validators.contains(peer);
    let credentials = Credentials { chain_id: CHAIN_ID, key, accepts: &accepts, max_frame_bytes: 1 << 20 };
    let mut codec = handshake_codec();
    let mut stream = BytesMut::from(data);
    let Ok(Some(hello)) = codec.decode(&mut stream) else { return };
    if let Ok(decoded) = decode::<Hello>(&hello) {
        assert_eq!(decode::<Hello>(&encode(&decoded)).ok().as_ref(), Some(&decoded));
    }
    let Ok(peer) = check_hello(&hello, &credentials, None) else { return };
    assert!(peer != me && fixture.validators.contains(&peer));
    let Ok(Some(proof)) = codec.decode(&mut stream) else { return };
    let Ok(proof) = decode::<Signature>(&proof) else { return };
    let _ = peer.verify(Domain::PeerHandshake, CHAIN_ID, &binding(&HANDSHAKE_HASH, &peer, &me), &proof);
});
