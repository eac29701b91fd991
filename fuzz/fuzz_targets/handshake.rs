//! The bytes a stranger sends on a fresh connection, before it proved a validator key: split into
//! frames by the handshake's length-delimited codec (its 1 KiB limit included), the first decoded
//! as a `Hello`, the second as the proof (a `Signature`), as `handshake` does; then the peer's
//! checks: chain, allowed key, and the proof over (our challenge, its key, our key).
//!
//! Kept minimal and on its own: the handshake is being replaced by Noise, and this target with it.
#![no_main]

use bytes::BytesMut;
use kubechain_fuzz::seeds::MY_CHALLENGE;
use kubechain_fuzz::{CHAIN_ID, fixture};
use kubechain_network::{HANDSHAKE_MAX_FRAME_BYTES, Hello, decode_handshake_frame};
use kubechain_types::encoding::encode;
use kubechain_types::{Domain, Signature};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

fuzz_target!(init: kubechain_fuzz::init(env!("CARGO_BIN_NAME")), |data: &[u8]| {
    let mut codec = LengthDelimitedCodec::builder().max_frame_length(HANDSHAKE_MAX_FRAME_BYTES).new_codec();
    let mut stream = BytesMut::from(data);
    let Ok(Some(hello)) = codec.decode(&mut stream) else { return };
    let Ok(hello) = decode_handshake_frame::<Hello>(&hello) else { return };
    assert_eq!(decode_handshake_frame::<Hello>(&encode(&hello)).ok().as_ref(), Some(&hello));
    let fixture = fixture();
    let me = fixture.validator_keys[0].public_key();
    if hello.chain_id != CHAIN_ID || hello.key == me || !fixture.validators.contains(&hello.key) {
        return;
    }
    let Ok(Some(proof)) = codec.decode(&mut stream) else { return };
    let Ok(proof) = decode_handshake_frame::<Signature>(&proof) else { return };
    let _ = hello.key.verify(Domain::PeerHandshake, CHAIN_ID, &encode(&(MY_CHALLENGE, hello.key, me)), &proof);
});
