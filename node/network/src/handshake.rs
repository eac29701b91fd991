//! The connect-time key exchange and proof of validator keys.
//!
//! `Noise_XX_25519_ChaChaPoly_SHA256` with prologue `kubechain/v1/peer-link`, fresh ephemeral
//! and static X25519 keys on every connection:
//!
//! ```text
//! initiator -> responder: e
//! responder -> initiator: e, ee, s, es, encrypted Hello { chain_id, key }
//! initiator -> responder: s, se, encrypted Hello { chain_id, key }
//! both, as transport message 0: Signature(PeerHandshake, chain_id, encode((h, own key, peer key)))
//! ```
//!
//! where `h` is the Noise handshake hash, which commits to both sides' ephemeral and static keys
//! and everything sent so far. Each side checks the other's chain id and that its ed25519 key is
//! a validator it links to as soon as it reads the other's Hello, and verifies the other's
//! signature before any frame: a relay that runs its own Noise session with each side holds a
//! different `h` with each, so neither validator's signature verifies for the other.

use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kubechain_types::encoding::{decode, encode};
use kubechain_types::{Domain, PublicKey, Signature, SigningKey};
use snow::HandshakeState;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::transport::{MAX_NOISE_MESSAGE, SecureLink, Wire, codec};

/// Longest a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message before the peer proved its key: a stranger cannot make us buffer megabytes.
pub const HANDSHAKE_MAX_MESSAGE_BYTES: usize = 1024;
/// The Noise protocol name: pattern XX, X25519, ChaCha20-Poly1305, SHA-256.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Mixed into the handshake hash: a handshake of another protocol never completes with ours.
pub const NOISE_PROLOGUE: &[u8] = b"kubechain/v1/peer-link";

/// What each side says about itself inside the encrypted handshake.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Hello {
    pub chain_id: String,
    pub key: PublicKey,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("peer is on chain {0:?}")]
    WrongChain(String),
    #[error("{0:?} is not a validator this node talks to")]
    UnknownKey(PublicKey),
    #[error("expected {expected:?}, the peer is {found:?}")]
    UnexpectedKey { expected: PublicKey, found: PublicKey },
    #[error("the peer's proof of its key does not verify")]
    BadSignature,
    #[error("noise: {0}")]
    Noise(snow::Error),
    #[error("malformed handshake: {0}")]
    Malformed(String),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("handshake timed out")]
    Timeout,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<snow::Error> for HandshakeError {
    fn from(error: snow::Error) -> HandshakeError {
        HandshakeError::Noise(error)
    }
}

/// Which end of the connection this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Dialed: speaks first.
    Initiator,
    /// Accepted.
    Responder,
}

/// Who this node is and whom it accepts, for one handshake.
pub struct Credentials<'a> {
    pub chain_id: &'a str,
    pub key: &'a SigningKey,
    /// True for the keys this node links to; asked as soon as the peer names itself.
    pub accepts: &'a (dyn Fn(&PublicKey) -> bool + Sync),
    /// Frames larger than this are refused on the established link.
    pub max_frame_bytes: usize,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("chain_id", &self.chain_id).finish_non_exhaustive()
    }
}

fn noise(role: Role) -> Result<HandshakeState, snow::Error> {
    let params = NOISE_PARAMS.parse()?;
    let builder = snow::Builder::new(params);
    let static_key = builder.generate_keypair()?;
    let builder = builder.local_private_key(&static_key.private)?.prologue(NOISE_PROLOGUE)?;
    match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
}

async fn write(wire: &mut Wire, noise: &mut HandshakeState, payload: &[u8]) -> Result<(), HandshakeError> {
    let mut message = vec![0u8; MAX_NOISE_MESSAGE];
    let length = noise.write_message(payload, &mut message)?;
    message.truncate(length);
    wire.send(Bytes::from(message)).await?;
    Ok(())
}

async fn read(wire: &mut Wire, noise: &mut HandshakeState) -> Result<Vec<u8>, HandshakeError> {
    let message = wire.next().await.ok_or(HandshakeError::Closed)??;
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
    let length = noise.read_message(&message, &mut payload)?;
    payload.truncate(length);
    Ok(payload)
}

/// The codec of the handshake's messages (`u16be(len) || message`, at most
/// [`HANDSHAKE_MAX_MESSAGE_BYTES`]), for tools that read them as a node does.
pub fn handshake_codec() -> tokio_util::codec::LengthDelimitedCodec {
    codec(HANDSHAKE_MAX_MESSAGE_BYTES)
}

/// Checks the peer's Hello (the decrypted payload of its handshake message); returns its key.
/// Pure, so the `handshake` fuzz target checks exactly what a node checks.
pub fn check_hello(
    payload: &[u8],
    credentials: &Credentials<'_>,
    expected: Option<PublicKey>,
) -> Result<PublicKey, HandshakeError> {
    let hello: Hello = decode(payload).map_err(|error| HandshakeError::Malformed(error.to_string()))?;
    if hello.chain_id != credentials.chain_id {
        return Err(HandshakeError::WrongChain(hello.chain_id));
    }
    if let Some(expected) = expected
        && expected != hello.key
    {
        return Err(HandshakeError::UnexpectedKey { expected, found: hello.key });
    }
    if !(credentials.accepts)(&hello.key) || hello.key == credentials.key.public_key() {
        return Err(HandshakeError::UnknownKey(hello.key));
    }
    Ok(hello.key)
}

/// What a validator signs to bind the Noise session to its key: the handshake hash, its own key,
/// then the peer's.
pub fn binding(handshake_hash: &[u8; 32], signer: &PublicKey, peer: &PublicKey) -> Vec<u8> {
    encode(&(*handshake_hash, *signer, *peer))
}

/// Runs the handshake over a fresh connection. `expected` is set when dialing a known validator.
/// Returns the link once the peer has proven its validator key.
pub async fn handshake(
    stream: TcpStream,
    role: Role,
    credentials: &Credentials<'_>,
    expected: Option<PublicKey>,
) -> Result<SecureLink, HandshakeError> {
    let mut wire = Framed::new(stream, codec(HANDSHAKE_MAX_MESSAGE_BYTES));
    let exchange = async {
        let me = credentials.key.public_key();
        let hello = encode(&Hello { chain_id: credentials.chain_id.to_string(), key: me });
        let mut noise = noise(role)?;
        let peer = match role {
            Role::Initiator => {
                write(&mut wire, &mut noise, &[]).await?;
                let peer = check_hello(&read(&mut wire, &mut noise).await?, credentials, expected)?;
                write(&mut wire, &mut noise, &hello).await?;
                peer
            }
            Role::Responder => {
                if !read(&mut wire, &mut noise).await?.is_empty() {
                    return Err(HandshakeError::Malformed("the first message carries a payload".into()));
                }
                write(&mut wire, &mut noise, &hello).await?;
                check_hello(&read(&mut wire, &mut noise).await?, credentials, expected)?
            }
        };
        let handshake_hash: [u8; 32] = noise
            .get_handshake_hash()
            .try_into()
            .map_err(|_| HandshakeError::Malformed("handshake hash is not 32 bytes".into()))?;
        let cipher = noise.into_stateless_transport_mode()?;
        // Transport message 0 each way: the proof. Both send before reading, so neither waits.
        let proof = credentials.key.sign(
            Domain::PeerHandshake,
            credentials.chain_id,
            &binding(&handshake_hash, &me, &peer),
        );
        let mut message = vec![0u8; MAX_NOISE_MESSAGE];
        let length = cipher.write_message(0, &encode(&proof), &mut message)?;
        message.truncate(length);
        wire.send(Bytes::from(message)).await?;
        let received = wire.next().await.ok_or(HandshakeError::Closed)??;
        let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
        let length = cipher.read_message(0, &received, &mut payload)?;
        let their_proof: Signature =
            decode(&payload[..length]).map_err(|error| HandshakeError::Malformed(error.to_string()))?;
        peer.verify(
            Domain::PeerHandshake,
            credentials.chain_id,
            &binding(&handshake_hash, &peer, &me),
            &their_proof,
        )
        .map_err(|_| HandshakeError::BadSignature)?;
        Ok((peer, cipher))
    };
    let (peer, cipher) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await.map_err(|_| HandshakeError::Timeout)??;
    wire.codec_mut().set_max_frame_length(MAX_NOISE_MESSAGE);
    Ok(SecureLink::new(peer, wire, cipher, credentials.max_frame_bytes, 1))
}
