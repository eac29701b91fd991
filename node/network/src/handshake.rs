//! The connect-time proof of validator keys.
//!
//! Both sides, at once: send `Hello { chain_id, key, challenge }` (32 random bytes), read the
//! other's; then send the signature, in the peer-handshake domain, of
//! `encode((their_challenge, my_key, their_key))`, and check theirs over
//! `(my_challenge, their_key, my_key)`.

use std::collections::HashSet;
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kubechain_types::encoding::{decode, encode};
use kubechain_types::{Domain, PublicKey, Signature, SigningKey};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Longest a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame before the peer proved its key: a stranger cannot make us buffer megabytes.
pub const HANDSHAKE_MAX_FRAME_BYTES: usize = 1024;

#[derive(BorshSerialize, BorshDeserialize)]
struct Hello {
    chain_id: String,
    key: PublicKey,
    challenge: [u8; 32],
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
    #[error("malformed handshake: {0}")]
    Malformed(String),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("handshake timed out")]
    Timeout,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no randomness for the challenge: {0}")]
    Randomness(String),
}

pub type Link = Framed<TcpStream, LengthDelimitedCodec>;

/// A fresh connection, framed for the handshake.
pub fn framed(stream: TcpStream) -> Link {
    let codec = LengthDelimitedCodec::builder().max_frame_length(HANDSHAKE_MAX_FRAME_BYTES).new_codec();
    Framed::new(stream, codec)
}

async fn receive<T: BorshDeserialize>(link: &mut Link) -> Result<T, HandshakeError> {
    let frame = link.next().await.ok_or(HandshakeError::Closed)??;
    decode(&frame).map_err(|error| HandshakeError::Malformed(error.to_string()))
}

/// Runs the handshake; returns the authenticated peer key, after which the link accepts frames
/// up to `max_frame_bytes`. `expected` is set when dialing.
pub async fn handshake(
    link: &mut Link,
    chain_id: &str,
    key: &SigningKey,
    allowed: &HashSet<PublicKey>,
    expected: Option<PublicKey>,
    max_frame_bytes: usize,
) -> Result<PublicKey, HandshakeError> {
    let exchange = async {
        let me = key.public_key();
        let mut challenge = [0u8; 32];
        getrandom::fill(&mut challenge).map_err(|error| HandshakeError::Randomness(error.to_string()))?;
        let hello = Hello { chain_id: chain_id.to_string(), key: me, challenge };
        link.send(Bytes::from(encode(&hello))).await?;
        let theirs: Hello = receive(link).await?;
        if theirs.chain_id != chain_id {
            return Err(HandshakeError::WrongChain(theirs.chain_id));
        }
        if let Some(expected) = expected
            && expected != theirs.key
        {
            return Err(HandshakeError::UnexpectedKey { expected, found: theirs.key });
        }
        if !allowed.contains(&theirs.key) {
            return Err(HandshakeError::UnknownKey(theirs.key));
        }
        let proof = key.sign(Domain::PeerHandshake, chain_id, &encode(&(theirs.challenge, me, theirs.key)));
        link.send(Bytes::from(encode(&proof))).await?;
        let their_proof: Signature = receive(link).await?;
        theirs
            .key
            .verify(Domain::PeerHandshake, chain_id, &encode(&(challenge, theirs.key, me)), &their_proof)
            .map_err(|_| HandshakeError::BadSignature)?;
        Ok(theirs.key)
    };
    let peer =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await.map_err(|_| HandshakeError::Timeout)??;
    link.codec_mut().set_max_frame_length(max_frame_bytes);
    Ok(peer)
}
