//! What a student's photo is before the browser decodes it: its size from the file's header
//! (PNG, JPEG), so a phone's 50–200-megapixel photo is decoded straight to a smaller size
//! instead of refused, and whether it is a HEIC/HEIF photo (an iPhone's default), which most
//! browsers cannot decode, so the student is told how to convert it rather than "not an
//! image". Pure functions, tested natively.

/// Largest image decoded at full size, in pixels; larger photos are decoded smaller.
pub const MAX_DECODE_PIXELS: u64 = 50_000_000;

/// Bytes of a file's start that [`sniff`] needs (a JPEG's frame header may follow up to 64 KB
/// of EXIF data and a thumbnail).
pub const HEADER_BYTES: usize = 256 * 1024;

/// What a file's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A PNG or JPEG of this width and height.
    Size(u32, u32),
    /// A HEIC/HEIF photo.
    Heic,
    /// Anything else: left to the browser.
    Unknown,
}

/// Reads the size of a PNG or JPEG, or recognises HEIC/HEIF (by content, or by a name or type
/// saying so when the content is not recognised).
pub fn sniff(head: &[u8], name: &str, mime: &str) -> Sniffed {
    if let Some(size) = png_size(head).or_else(|| jpeg_size(head)) {
        return Sniffed::Size(size.0, size.1);
    }
    let lower = name.to_ascii_lowercase();
    let named = lower.ends_with(".heic") || lower.ends_with(".heif");
    let typed = mime.eq_ignore_ascii_case("image/heic") || mime.eq_ignore_ascii_case("image/heif");
    if is_heif(head) || named || typed { Sniffed::Heic } else { Sniffed::Unknown }
}

fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(..8)? != b"\x89PNG\r\n\x1a\n" || b.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?));
    Some((be(16)?, be(20)?))
}

/// Walks a JPEG's markers to its frame header (SOF0–SOF15 but DHT, JPG and DAC).
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        // Markers may be padded with extra 0xFF bytes.
        while *b.get(at)? == 0xFF && *b.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *b.get(at)? != 0xFF {
            return None;
        }
        let marker = *b.get(at + 1)?;
        let len = usize::from(u16::from_be_bytes([*b.get(at + 2)?, *b.get(at + 3)?]));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([*b.get(at + 5)?, *b.get(at + 6)?]);
            let w = u16::from_be_bytes([*b.get(at + 7)?, *b.get(at + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        if marker == 0xDA || len < 2 {
            return None; // the scan starts (or the header is broken) before any frame header
        }
        at += 2 + len;
    }
}

/// An ISO-BMFF `ftyp` box naming a HEIF brand.
fn is_heif(b: &[u8]) -> bool {
    b.get(4..8) == Some(b"ftyp")
        && b.get(8..12).is_some_and(|brand| {
            [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"]
                .iter()
                .any(|h| brand == *h)
        })
}

/// The size to decode a `w × h` photo at: itself when it fits [`MAX_DECODE_PIXELS`], else the
/// largest size of the same shape that does.
pub fn decode_size(w: u32, h: u32) -> (u32, u32) {
    let area = u64::from(w) * u64::from(h);
    if area <= MAX_DECODE_PIXELS || area == 0 {
        return (w, h);
    }
    let scale = (MAX_DECODE_PIXELS as f64 / area as f64).sqrt();
    let fit = |v: u32| ((f64::from(v) * scale).floor() as u32).max(1);
    (fit(w), fit(h))
}

/// What to do with a HEIC photo.
pub fn heic_advice(name: &str) -> String {
    format!(
        "{name}: a HEIC photo (an iPhone's default format), which this browser cannot read. \
         Convert it to JPEG first: on the iPhone, share it to Files or Mail, or set Settings → \
         Camera → Formats → Most Compatible for new photos; on a Mac, open it in Preview and \
         File → Export as JPEG; on Windows, the Photos app saves it as JPEG."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 2, 0, 0, 0]);
        b
    }

    /// A JPEG start: SOI, an APP1 segment of `exif` bytes, then a baseline frame header.
    fn jpeg(w: u16, h: u16, exif: usize) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1];
        b.extend(((exif + 2) as u16).to_be_bytes());
        b.extend(vec![0u8; exif]);
        b.extend([0xFF, 0xFF, 0xC0, 0x00, 0x11, 0x08]); // one padding 0xFF, SOF0, length, depth
        b.extend(h.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend([3, 1, 0x22, 0]);
        b
    }

    #[test]
    fn a_png_header_gives_its_size() {
        assert_eq!(sniff(&png(9000, 6000), "a.png", "image/png"), Sniffed::Size(9000, 6000));
    }

    #[test]
    fn a_jpeg_header_gives_its_size_past_exif_data() {
        assert_eq!(sniff(&jpeg(12000, 9000, 60_000), "a.jpg", ""), Sniffed::Size(12000, 9000));
    }

    #[test]
    fn a_truncated_jpeg_or_a_scan_before_any_frame_is_unknown() {
        let cut = jpeg(4000, 3000, 1000);
        assert_eq!(sniff(&cut[..500], "a.jpg", ""), Sniffed::Unknown);
        let scan = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 0, 0, 0, 0, 0, 0];
        assert_eq!(sniff(&scan, "a.jpg", ""), Sniffed::Unknown);
    }

    #[test]
    fn heic_is_recognised_by_content_name_or_type() {
        let mut heic = vec![0, 0, 0, 24];
        heic.extend(b"ftypheic\0\0\0\0mif1heic");
        assert_eq!(sniff(&heic, "IMG_0001", ""), Sniffed::Heic);
        assert_eq!(sniff(b"garbage", "IMG_0001.HEIC", ""), Sniffed::Heic);
        assert_eq!(sniff(b"garbage", "photo", "image/heif"), Sniffed::Heic);
        assert_eq!(sniff(b"garbage", "photo.webp", "image/webp"), Sniffed::Unknown);
        assert!(heic_advice("IMG_0001.HEIC").contains("JPEG"));
    }

    #[test]
    fn photos_over_the_limit_are_decoded_smaller_with_their_shape() {
        assert_eq!(decode_size(4000, 3000), (4000, 3000));
        for (w, h) in [(9000, 6000), (12240, 16320), (16384, 12288)] {
            let (dw, dh) = decode_size(w, h);
            assert!(u64::from(dw) * u64::from(dh) <= MAX_DECODE_PIXELS, "{w}×{h} → {dw}×{dh}");
            assert!(u64::from(dw) * u64::from(dh) > MAX_DECODE_PIXELS * 99 / 100);
            let (a, b) = (f64::from(w) / f64::from(h), f64::from(dw) / f64::from(dh));
            assert!((a - b).abs() < 1e-3, "shape {a} → {b}");
        }
    }
}
