//! The protobuf codec of every generated service and client (build.rs sets
//! it with `codec_path`): prost's, except that a message that does not
//! decode is INVALID_ARGUMENT with City's ErrorInfo. prost's own codec calls
//! it INTERNAL, which tells a client sending garbage that City is broken.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::error::Error;

/// The encode buffer each call allocates up front. tonic's default is 8 KiB
/// per call, held for a stream's whole life: with many streams open that is
/// most of their memory, while City's answers and stream pieces are mostly
/// under a kilobyte (a larger message grows the buffer as it is written).
const ENCODE_BUFFER_BYTES: usize = 1024;
/// tonic's default: how much a stream encodes before yielding to others.
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// prost's codec with malformed messages refused as INVALID_ARGUMENT.
pub struct ProtoCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        let settings = BufferSettings::new(ENCODE_BUFFER_BYTES, YIELD_THRESHOLD_BYTES);
        ProstCodec::<T, U>::raw_encoder(settings)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(self.0.decoder())
    }
}

/// prost's decoder; its errors become INVALID_ARGUMENT.
pub struct ProtoDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The codec does not know the call's request id.
        self.0
            .decode(buf)
            .map_err(|status| Error::invalid("message", status.message()).to_status(""))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
