//! Frames over an established Noise session: every byte after the handshake is a Noise transport
//! message, and a frame longer than one message is split into chunks.
//!
//! On the wire each Noise message is `u16be(len) || message` (at most 65535 bytes, the Noise
//! limit). A frame of `n` bytes is sent as the plaintexts `u32le(n) || first bytes`, then the
//! rest in order, each plaintext at most [`MAX_CHUNK_PLAINTEXT`] bytes. The receiver checks `n`
//! against its frame limit before it buffers anything, and each message's nonce is its position
//! in the stream (the sender's count), so a dropped, replayed, reordered or altered message fails
//! authentication and ends the link.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use snow::StatelessTransportState;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use kubechain_types::PublicKey;

/// The largest Noise message (the protocol's limit).
pub const MAX_NOISE_MESSAGE: usize = 65535;
/// Bytes the AEAD adds to each message (ChaCha20-Poly1305 tag).
const TAG_BYTES: usize = 16;
/// Plaintext bytes per Noise transport message, at most.
pub const MAX_CHUNK_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_BYTES;
/// The first chunk of a frame starts with the frame's length.
const LENGTH_PREFIX: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the peer closed the link")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Altered, replayed, reordered or dropped ciphertext: the AEAD tag does not verify under
    /// the expected nonce.
    #[error("a message does not decrypt: altered, replayed or out of order")]
    Undecryptable,
    #[error("frame of {announced} bytes announced, over the limit of {limit}")]
    Oversized { announced: usize, limit: usize },
    #[error("malformed chunking: {0}")]
    Malformed(&'static str),
    #[error("frame of {0} bytes is over the limit")]
    TooLargeToSend(usize),
}

pub(crate) type Wire = Framed<TcpStream, LengthDelimitedCodec>;

/// The wire codec: `u16be(len) || message`, at most `max` bytes per message.
pub(crate) fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(2).max_frame_length(max).new_codec()
}

/// An authenticated, encrypted link to one validator.
#[derive(Debug)]
pub struct SecureLink {
    peer: PublicKey,
    writer: FrameWriter<SplitSink<Wire, Bytes>>,
    reader: FrameReader<SplitStream<Wire>>,
}

impl SecureLink {
    pub(crate) fn new(
        peer: PublicKey,
        wire: Wire,
        cipher: StatelessTransportState,
        max_frame_bytes: usize,
        first_nonce: u64,
    ) -> SecureLink {
        let cipher = Arc::new(cipher);
        let (sink, stream) = wire.split();
        SecureLink {
            peer,
            writer: FrameWriter {
                sink,
                cipher: cipher.clone(),
                nonce: first_nonce,
                buffer: vec![0; MAX_NOISE_MESSAGE],
            },
            reader: FrameReader {
                stream,
                cipher,
                nonce: first_nonce,
                max_frame_bytes,
                buffer: vec![0; MAX_NOISE_MESSAGE],
            },
        }
    }

    /// The validator at the other end, as proven in the handshake.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// Sends one frame (any length up to `u32::MAX`; the receiver enforces its own limit).
    pub async fn send_frame(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.writer.send(frame).await
    }

    /// The next whole frame.
    pub async fn receive_frame(&mut self) -> Result<Vec<u8>, LinkError> {
        self.reader.receive().await
    }

    /// The sending and receiving halves, to use from two tasks.
    pub fn split(self) -> (LinkSender, LinkReceiver) {
        (self.writer, self.reader)
    }
}

/// The sending half of a [`SecureLink`].
pub type LinkSender = FrameWriter<SplitSink<Wire, Bytes>>;
/// The receiving half of a [`SecureLink`].
pub type LinkReceiver = FrameReader<SplitStream<Wire>>;

/// The sending half: encrypts with its own nonce count.
pub struct FrameWriter<S> {
    sink: S,
    cipher: Arc<StatelessTransportState>,
    nonce: u64,
    buffer: Vec<u8>,
}

impl<S> std::fmt::Debug for FrameWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

impl<S: Sink<Bytes, Error = std::io::Error> + Unpin> FrameWriter<S> {
    /// Encrypts and queues one Noise message (without flushing).
    async fn feed_message(&mut self, plaintext: &[u8]) -> Result<(), LinkError> {
        let written = self
            .cipher
            .write_message(self.nonce, plaintext, &mut self.buffer)
            .map_err(|_| LinkError::Malformed("a chunk does not fit a Noise message"))?;
        self.nonce += 1;
        self.sink.feed(Bytes::copy_from_slice(&self.buffer[..written])).await?;
        Ok(())
    }

    /// Sends one frame (any length up to `u32::MAX`; the receiver enforces its own limit).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        let length = u32::try_from(frame.len()).map_err(|_| LinkError::TooLargeToSend(frame.len()))?;
        let first_bytes = frame.len().min(MAX_CHUNK_PLAINTEXT - LENGTH_PREFIX);
        let (first, mut rest) = frame.split_at(first_bytes);
        let mut chunk = Vec::with_capacity(LENGTH_PREFIX + first.len());
        chunk.extend_from_slice(&length.to_le_bytes());
        chunk.extend_from_slice(first);
        self.feed_message(&chunk).await?;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(MAX_CHUNK_PLAINTEXT));
            self.feed_message(chunk).await?;
            rest = after;
        }
        self.sink.flush().await?;
        Ok(())
    }
}

/// The receiving half: decrypts with its own nonce count and reassembles frames.
pub struct FrameReader<S> {
    stream: S,
    cipher: Arc<StatelessTransportState>,
    nonce: u64,
    max_frame_bytes: usize,
    buffer: Vec<u8>,
}

impl<S> std::fmt::Debug for FrameReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader").field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

impl<S: Stream<Item = std::io::Result<BytesMut>> + Unpin> FrameReader<S> {
    /// The next message, decrypted into the reader's buffer; returns its plaintext length.
    async fn next_message(&mut self) -> Result<usize, LinkError> {
        let message = self.stream.next().await.ok_or(LinkError::Closed)??;
        let length = self
            .cipher
            .read_message(self.nonce, &message, &mut self.buffer)
            .map_err(|_| LinkError::Undecryptable)?;
        self.nonce += 1;
        Ok(length)
    }

    /// The next whole frame.
    pub async fn receive(&mut self) -> Result<Vec<u8>, LinkError> {
        let length = self.next_message().await?;
        let Some((prefix, first)) = self.buffer[..length].split_first_chunk::<LENGTH_PREFIX>() else {
            return Err(LinkError::Malformed("the first chunk has no frame length"));
        };
        let announced = u32::from_le_bytes(*prefix) as usize;
        if announced > self.max_frame_bytes {
            return Err(LinkError::Oversized { announced, limit: self.max_frame_bytes });
        }
        if first.len() > announced {
            return Err(LinkError::Malformed("a chunk runs past the frame's length"));
        }
        // Room for what has arrived; the rest grows as chunks do, so an announced length costs
        // nothing until its bytes come.
        let mut frame = Vec::with_capacity(first.len());
        frame.extend_from_slice(first);
        while frame.len() < announced {
            let length = self.next_message().await?;
            if length == 0 || frame.len() + length > announced {
                return Err(LinkError::Malformed("a chunk is empty or runs past the frame's length"));
            }
            frame.extend_from_slice(&self.buffer[..length]);
        }
        Ok(frame)
    }
}
