//! IDX file parsing: the big-endian MNIST container format, raw or gzip-compressed, u8 elements only.
//!
//! Every size in an IDX header is untrusted until it has been checked against the real amount of
//! data, so a corrupt or hostile header can never make the parser allocate more than the file holds.

use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::data::DataError;

/// Element type byte for unsigned bytes, the only type this parser reads.
const TYPE_U8: u8 = 0x08;
/// A u8 IDX file has between one (labels) and four dimensions.
const MAX_DIMS: usize = 4;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Magic number (4 bytes) plus one u32 per dimension.
const MAGIC_LEN: usize = 4;
const DIM_LEN: usize = 4;
/// How far past the promised size a compressed stream is read to tell corruption from extra data;
/// bounded so a decompression bomb costs at most this much time, never memory.
const TRAILING_SCAN_LIMIT: u64 = 64 * 1024 * 1024;
/// Bytes moved per read while a body of unknown real length (gzip) streams in.
const READ_CHUNK: usize = 32 * 1024;

/// A parsed IDX file of unsigned bytes, `data` in row-major order of `dims`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file from disk; gzip compression is recognised by its magic bytes, not the name.
pub fn read_idx_file(path: &Path) -> Result<IdxArray, DataError> {
    let file_name = path.display().to_string();
    let io_error = |source: io::Error| DataError::Io { path: path.to_path_buf(), source };
    let mut file = crate::files::open_regular(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    if file_len == 0 {
        return Err(DataError::Empty { file: file_name });
    }

    let mut prefix = [0u8; 2];
    let prefix_len = read_up_to(&mut file, &mut prefix).map_err(io_error)?;
    // Put the sniffed bytes back in front of the rest of the file.
    let stream = prefix.get(..prefix_len).unwrap_or_default().chain(file);
    if prefix == GZIP_MAGIC {
        let gzip_error = |source: io::Error| DataError::Gzip { file: file_name.clone(), source };
        read_idx_stream(MultiGzDecoder::new(stream), &file_name, None, &gzip_error)
    } else {
        read_idx_stream(stream, &file_name, Some(file_len), &io_error)
    }
}

/// Parses an IDX file held in memory (raw or gzip); `name` identifies it in error messages.
pub fn parse_idx_bytes(bytes: &[u8], name: &str) -> Result<IdxArray, DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty { file: name.to_owned() });
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let gzip_error = |source: io::Error| DataError::Gzip { file: name.to_owned(), source };
        read_idx_stream(MultiGzDecoder::new(bytes), name, None, &gzip_error)
    } else {
        // Reading from a slice cannot fail; the mapping only satisfies the shared signature.
        let io_error = |source: io::Error| DataError::Io { path: name.into(), source };
        let total_len = u64::try_from(bytes.len()).ok();
        read_idx_stream(bytes, name, total_len, &io_error)
    }
}

/// Reads header and body from an uncompressed IDX stream.
///
/// `total_len` is the stream's length when it is known up front (a raw file or slice): the body
/// size is then checked before anything is allocated. Without it (gzip) the body is read through a
/// limit one byte past the promised size, so memory only grows with data that really arrives.
fn read_idx_stream<R: Read>(
    mut reader: R,
    file: &str,
    total_len: Option<u64>,
    wrap_io: &dyn Fn(io::Error) -> DataError,
) -> Result<IdxArray, DataError> {
    let mut magic = [0u8; MAGIC_LEN];
    let magic_len = read_up_to(&mut reader, &mut magic).map_err(wrap_io)?;
    if magic_len == 0 {
        // Only reachable for a gzip stream that decompresses to nothing.
        return Err(DataError::Empty { file: file.to_owned() });
    }
    if magic_len < MAGIC_LEN {
        return Err(DataError::HeaderTruncated { file: file.to_owned(), expected: MAGIC_LEN, actual: magic_len });
    }
    let dim_count = check_magic(magic, file)?;

    let header_len = MAGIC_LEN + DIM_LEN * dim_count;
    let mut dim_bytes = [0u8; DIM_LEN * MAX_DIMS];
    let dim_bytes = dim_bytes.get_mut(..DIM_LEN * dim_count).unwrap_or_default();
    let dims_read = read_up_to(&mut reader, dim_bytes).map_err(wrap_io)?;
    if dims_read < dim_bytes.len() {
        return Err(DataError::HeaderTruncated {
            file: file.to_owned(),
            expected: header_len,
            actual: MAGIC_LEN + dims_read,
        });
    }
    let dims = parse_dims(dim_bytes, file)?;
    let expected = data_len(&dims, file)?;
    let expected_u64 = to_u64(expected, &dims, file)?;

    let mut data = match total_len {
        Some(total) => {
            let actual = total.saturating_sub(to_u64(header_len, &dims, file)?);
            check_body_len(file, expected_u64, actual)?;
            // The length matches the real file, so the header has earned this allocation.
            Vec::with_capacity(expected)
        }
        None => Vec::new(),
    };
    // One byte past the promise is enough to detect trailing data, and it makes a gzip decoder
    // reach its end and verify the checksum when the length is exactly right.
    let limit = expected.saturating_add(1);
    read_capped(&mut reader, limit, &mut data).map_err(wrap_io)?;
    let mut actual = to_u64(data.len(), &dims, file)?;
    if actual > expected_u64 && total_len.is_none() {
        // Too long may just be corruption: read on (into a sink, so memory stays flat) to let the
        // decoder find a bad checksum, and to count how much extra there really is.
        let extra = io::copy(&mut reader.take(TRAILING_SCAN_LIMIT), &mut io::sink()).map_err(wrap_io)?;
        actual = actual.saturating_add(extra);
    }
    check_body_len(file, expected_u64, actual)?;
    Ok(IdxArray { dims, data })
}

/// Validates the four magic bytes and returns the dimension count.
fn check_magic(magic: [u8; MAGIC_LEN], file: &str) -> Result<usize, DataError> {
    let [zero_a, zero_b, type_byte, dim_count] = magic;
    if zero_a != 0 || zero_b != 0 {
        return Err(DataError::BadMagic { file: file.to_owned(), found: u32::from_be_bytes(magic) });
    }
    if type_byte != TYPE_U8 {
        return Err(DataError::UnsupportedType {
            file: file.to_owned(),
            type_byte,
            type_name: idx_type_name(type_byte),
        });
    }
    let dim_count = usize::from(dim_count);
    if !(1..=MAX_DIMS).contains(&dim_count) {
        return Err(DataError::BadDimCount { file: file.to_owned(), count: dim_count });
    }
    Ok(dim_count)
}

/// Human name of an IDX element type byte, for error messages.
fn idx_type_name(type_byte: u8) -> &'static str {
    match type_byte {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "not an IDX type",
    }
}

/// Decodes the big-endian u32 dimensions; a zero dimension means an empty file and is rejected.
fn parse_dims(dim_bytes: &[u8], file: &str) -> Result<Vec<usize>, DataError> {
    let mut dims = Vec::with_capacity(MAX_DIMS);
    for chunk in dim_bytes.chunks_exact(DIM_LEN) {
        let mut word = [0u8; DIM_LEN];
        word.copy_from_slice(chunk);
        let dim = u32::from_be_bytes(word);
        let dim =
            usize::try_from(dim).map_err(|_| DataError::Overflow { file: file.to_owned(), dims: dims.clone() })?;
        dims.push(dim);
    }
    if let Some(axis) = dims.iter().position(|&dim| dim == 0) {
        return Err(DataError::ZeroDimension { file: file.to_owned(), axis, dims });
    }
    Ok(dims)
}

/// Number of data bytes the dimensions promise, with overflow reported as a corrupt header.
fn data_len(dims: &[usize], file: &str) -> Result<usize, DataError> {
    dims.iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or_else(|| DataError::Overflow { file: file.to_owned(), dims: dims.to_vec() })
}

fn to_u64(value: usize, dims: &[usize], file: &str) -> Result<u64, DataError> {
    u64::try_from(value).map_err(|_| DataError::Overflow { file: file.to_owned(), dims: dims.to_vec() })
}

fn check_body_len(file: &str, expected: u64, actual: u64) -> Result<(), DataError> {
    if actual < expected {
        Err(DataError::Truncated { file: file.to_owned(), expected, actual })
    } else if actual > expected {
        Err(DataError::TrailingData { file: file.to_owned(), expected, actual })
    } else {
        Ok(())
    }
}

/// Appends up to `limit` bytes from `reader` to `data`, never letting its capacity pass `limit`.
///
/// `read_to_end` doubles its buffer, so a gzip body could cost up to twice the header's promise;
/// growing by doubling but clamped to the limit keeps every allocation within what was promised and
/// within twice what really arrived.
fn read_capped<R: Read>(reader: &mut R, limit: usize, data: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let want = limit.saturating_sub(data.len()).min(READ_CHUNK);
        let Some(buf) = chunk.get_mut(..want).filter(|buf| !buf.is_empty()) else {
            return Ok(());
        };
        let read = match reader.read(buf) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let needed = data.len().saturating_add(read);
        if needed > data.capacity() {
            let target = data.capacity().saturating_mul(2).max(needed).min(limit.max(needed));
            data.reserve_exact(target - data.len());
        }
        data.extend_from_slice(buf.get(..read).unwrap_or_default());
    }
}

/// Fills as much of `buf` as the stream allows; unlike `read_exact`, a short stream is not an error.
fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::{Duration, Instant};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::data::test_support::{ScratchDir, asset_path, gunzip_asset};

    const IMAGE_HEADER_LEN: usize = 16;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).expect("gzip into memory");
        encoder.finish().expect("finish gzip")
    }

    fn idx_header(type_byte: u8, dims: &[u32]) -> Vec<u8> {
        let dim_count = u8::try_from(dims.len()).expect("few dims");
        let mut header = vec![0, 0, type_byte, dim_count];
        for dim in dims {
            header.extend_from_slice(&dim.to_be_bytes());
        }
        header
    }

    #[test]
    fn real_gzip_file_parses_with_expected_shape() -> Result<(), DataError> {
        let images = read_idx_file(&asset_path("train-images-idx3-ubyte.gz"))?;
        assert_eq!(images.dims, vec![8000, 28, 28]);
        assert_eq!(images.data.len(), 8000 * 28 * 28);
        let labels = read_idx_file(&asset_path("t10k-labels-idx1-ubyte.gz"))?;
        assert_eq!(labels.dims, vec![2000]);
        assert!(labels.data.iter().all(|&label| label < 10));
        Ok(())
    }

    #[test]
    fn raw_file_and_bytes_parse_the_same_as_gzip() -> Result<(), DataError> {
        let raw = gunzip_asset("train-images-idx3-ubyte.gz");
        let from_gzip = read_idx_file(&asset_path("train-images-idx3-ubyte.gz"))?;

        let dir = ScratchDir::new("raw-vs-gzip");
        // A gzip-looking name on raw bytes: detection must go by content, not the extension.
        let raw_path = dir.path().join("train-images-idx3-ubyte.gz");
        std::fs::write(&raw_path, &raw).expect("write raw copy");
        let from_raw_file = read_idx_file(&raw_path)?;
        let from_raw_bytes = parse_idx_bytes(&raw, "raw images")?;
        let from_gzip_bytes = parse_idx_bytes(&gzip(&raw), "regzipped images")?;

        assert_eq!(from_raw_file, from_gzip);
        assert_eq!(from_raw_bytes, from_gzip);
        assert_eq!(from_gzip_bytes, from_gzip);
        assert_eq!(from_gzip.data.as_slice(), raw.get(IMAGE_HEADER_LEN..).expect("body"));
        Ok(())
    }

    #[test]
    fn truncated_body_is_reported_with_both_sizes() {
        let raw = gunzip_asset("train-images-idx3-ubyte.gz");
        let cut_len = raw.len() / 2;
        let cut = raw.get(..cut_len).expect("cut");
        let expected = 8000 * 28 * 28;
        let actual = (cut_len - IMAGE_HEADER_LEN) as u64;

        for (bytes, name) in [(cut.to_vec(), "cut.idx"), (gzip(cut), "cut.idx.gz")] {
            let error = parse_idx_bytes(&bytes, name).expect_err("truncated must fail");
            assert!(
                matches!(error, DataError::Truncated { expected: e, actual: a, .. } if e == expected && a == actual),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.starts_with(name), "{message}");
            assert!(message.contains(&expected.to_string()), "{message}");
            assert!(message.contains(&actual.to_string()), "{message}");
        }

        let dir = ScratchDir::new("truncated-file");
        let path = dir.path().join("cut-images");
        std::fs::write(&path, cut).expect("write cut file");
        let error = read_idx_file(&path).expect_err("truncated file must fail");
        assert!(matches!(error, DataError::Truncated { .. }), "{error:?}");
        assert!(error.to_string().contains("cut-images"), "{error}");
    }

    #[test]
    fn truncated_header_is_reported() {
        let header = idx_header(TYPE_U8, &[8000, 28, 28]);
        let cut = header.get(..9).expect("cut header");
        let error = parse_idx_bytes(cut, "short-header").expect_err("must fail");
        assert!(matches!(error, DataError::HeaderTruncated { expected: 16, actual: 9, .. }), "{error:?}");
        assert!(error.to_string().starts_with("short-header"), "{error}");
    }

    #[test]
    fn trailing_data_is_rejected() {
        let mut raw = gunzip_asset("t10k-labels-idx1-ubyte.gz");
        raw.extend_from_slice(&[1, 2, 3]);
        for (bytes, name) in [(raw.clone(), "long.idx"), (gzip(&raw), "long.idx.gz")] {
            let error = parse_idx_bytes(&bytes, name).expect_err("must fail");
            assert!(matches!(error, DataError::TrailingData { expected: 2000, actual: 2003, .. }), "{error:?}");
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn wrong_magic_is_rejected_with_the_found_value() {
        let mut raw = gunzip_asset("t10k-labels-idx1-ubyte.gz");
        if let Some(first) = raw.first_mut() {
            *first = 0x12;
        }
        let error = parse_idx_bytes(&raw, "labels.bin").expect_err("must fail");
        assert!(matches!(error, DataError::BadMagic { found: 0x1200_0801, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("labels.bin"), "{message}");
        assert!(message.contains("0x12000801"), "{message}");

        let text = b"hello, this is not an IDX file";
        let error = parse_idx_bytes(text, "notes.txt").expect_err("must fail");
        assert!(matches!(error, DataError::BadMagic { .. }), "{error:?}");
    }

    #[test]
    fn non_u8_types_are_rejected_by_name() {
        let mut bytes = idx_header(0x0D, &[2]);
        bytes.extend_from_slice(&[0; 8]);
        let error = parse_idx_bytes(&bytes, "floats.idx").expect_err("must fail");
        assert!(matches!(error, DataError::UnsupportedType { type_byte: 0x0D, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("0x0d") && message.contains("32-bit float"), "{message}");
    }

    #[test]
    fn bad_dimension_counts_are_rejected() {
        for dim_count in [0u8, 5] {
            let bytes = [0, 0, TYPE_U8, dim_count, 0, 0, 0, 1];
            let error = parse_idx_bytes(&bytes, "dims.idx").expect_err("must fail");
            assert!(matches!(error, DataError::BadDimCount { .. }), "{error:?}");
        }
        let mut four_dims = idx_header(TYPE_U8, &[2, 1, 2, 2]);
        four_dims.extend_from_slice(&[7; 8]);
        let parsed = parse_idx_bytes(&four_dims, "four.idx").expect("4-D u8 is accepted");
        assert_eq!(parsed.dims, vec![2, 1, 2, 2]);
    }

    #[test]
    fn zero_dimension_is_rejected() {
        let bytes = idx_header(TYPE_U8, &[0, 28, 28]);
        let error = parse_idx_bytes(&bytes, "none.idx").expect_err("must fail");
        assert!(matches!(error, DataError::ZeroDimension { axis: 0, .. }), "{error:?}");
    }

    #[test]
    fn billion_image_header_fails_fast_without_allocating() {
        let mut raw = idx_header(TYPE_U8, &[1_000_000_000, 28, 28]);
        raw.extend_from_slice(&[0u8; 28 * 28 * 3]);
        let expected = 1_000_000_000u64 * 28 * 28;
        let dir = ScratchDir::new("billion");
        let raw_path = dir.path().join("huge-raw");
        let gz_path = dir.path().join("huge.gz");
        std::fs::write(&raw_path, &raw).expect("write raw");
        std::fs::write(&gz_path, gzip(&raw)).expect("write gzip");

        let start = Instant::now();
        let results = [
            parse_idx_bytes(&raw, "huge raw bytes"),
            parse_idx_bytes(&gzip(&raw), "huge gzip bytes"),
            read_idx_file(&raw_path),
            read_idx_file(&gz_path),
        ];
        for result in results {
            let error = result.expect_err("must fail");
            assert!(
                matches!(error, DataError::Truncated { expected: e, actual: 2352, .. } if e == expected),
                "{error:?}"
            );
        }
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn overflowing_dimensions_are_rejected() {
        let bytes = idx_header(TYPE_U8, &[u32::MAX, u32::MAX, u32::MAX, u32::MAX]);
        let error = parse_idx_bytes(&bytes, "overflow.idx").expect_err("must fail");
        assert!(matches!(error, DataError::Overflow { .. }), "{error:?}");
        assert!(error.to_string().starts_with("overflow.idx"), "{error}");
        let error = parse_idx_bytes(&gzip(&bytes), "overflow.idx.gz").expect_err("must fail");
        assert!(matches!(error, DataError::Overflow { .. }), "{error:?}");
    }

    #[test]
    fn corrupt_gzip_is_reported_as_gzip_error() {
        let mut compressed = std::fs::read(asset_path("train-labels-idx1-ubyte.gz")).expect("read");
        let middle = compressed.len() / 2;
        for byte in compressed.get_mut(middle..middle + 16).expect("middle") {
            *byte ^= 0xA5;
        }
        let error = parse_idx_bytes(&compressed, "broken.gz").expect_err("must fail");
        assert!(matches!(error, DataError::Gzip { .. }), "{error:?}");
        assert!(error.to_string().starts_with("broken.gz"), "{error}");

        let dir = ScratchDir::new("corrupt-gzip");
        let path = dir.path().join("train-labels-idx1-ubyte.gz");
        std::fs::write(&path, &compressed).expect("write");
        let error = read_idx_file(&path).expect_err("must fail");
        assert!(matches!(error, DataError::Gzip { .. }), "{error:?}");
        assert!(error.to_string().contains("train-labels-idx1-ubyte.gz"), "{error}");
    }

    #[test]
    fn cut_gzip_stream_is_reported() {
        let compressed = std::fs::read(asset_path("train-images-idx3-ubyte.gz")).expect("read");
        let cut = compressed.get(..compressed.len() / 2).expect("cut");
        let error = parse_idx_bytes(cut, "half.gz").expect_err("must fail");
        assert!(matches!(error, DataError::Gzip { .. } | DataError::Truncated { .. }), "{error:?}");
        assert!(error.to_string().starts_with("half.gz"), "{error}");
    }

    #[test]
    fn empty_inputs_are_rejected() {
        let error = parse_idx_bytes(&[], "nothing.idx").expect_err("must fail");
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
        assert!(error.to_string().starts_with("nothing.idx"), "{error}");

        let dir = ScratchDir::new("empty");
        let path = dir.path().join("empty-file");
        std::fs::write(&path, []).expect("write");
        let error = read_idx_file(&path).expect_err("must fail");
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
        assert!(error.to_string().contains("empty-file"), "{error}");

        let error = parse_idx_bytes(&gzip(&[]), "empty.gz").expect_err("must fail");
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let dir = ScratchDir::new("missing");
        let path = dir.path().join("no-such-file");
        let error = read_idx_file(&path).expect_err("must fail");
        assert!(matches!(error, DataError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("no-such-file"), "{error}");
    }
}
