//! Seal images (印模): the picture a seal shows on a sealed document, its media type, and the
//! classic round official-seal image drawn as SVG.
//!
//! The seal record carries the image's SHA-256 (`pictureDigest`) and, for records made with
//! [`crate::issue_seal_with_image`] or [`crate::import_seal_with_image`], its type
//! (`pictureType`, `PNG` or `SVG` as in GB/T 38540's `SES_ESPictrueInfo.type`). The image
//! bytes themselves are kept beside the seal by whoever stores it.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::record::SealType;
use crate::seal::sha256;

/// Largest seal image accepted.
pub const MAX_IMAGE_LEN: usize = 1024 * 1024;
/// The PNG file signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The red of the generated seal image.
const SEAL_RED: &str = "#e60012";
/// Side of the generated image's view box.
const VIEW: f64 = 200.0;

/// Errors of the `image` module.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image is empty or larger than [`MAX_IMAGE_LEN`].
    #[error("seal image is {0} bytes; it must be 1 byte to 1 MiB")]
    Size(usize),
    /// The bytes are neither a PNG nor an SVG document.
    #[error("seal image is neither PNG nor SVG: {0}")]
    UnknownFormat(String),
    /// The SVG document holds active content (scripts, event handlers, foreign objects).
    #[error("seal image SVG holds active content ({0}); only static drawings are accepted")]
    ActiveContent(&'static str),
}

/// The formats a seal image may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    /// PNG, `image/png`.
    Png,
    /// SVG, `image/svg+xml`.
    Svg,
}

impl ImageType {
    /// The media type, e.g. `image/svg+xml`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Svg => "image/svg+xml",
        }
    }

    /// The type for a media type.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "image/png" => Some(Self::Png),
            "image/svg+xml" => Some(Self::Svg),
            _ => None,
        }
    }

    /// The `pictureType` of the seal record: `PNG` or `SVG`.
    pub fn record_code(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Svg => "SVG",
        }
    }

    /// The type for a `pictureType`.
    pub fn from_record_code(code: &str) -> Option<Self> {
        match code {
            "PNG" => Some(Self::Png),
            "SVG" => Some(Self::Svg),
            _ => None,
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }
}

/// A seal image whose format has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealImage {
    image_type: ImageType,
    bytes: Vec<u8>,
}

impl SealImage {
    /// Reads untrusted bytes as a seal image: at most 1 MiB, a PNG (signature and IHDR
    /// header with a non-zero size) or an SVG document (UTF-8 whose root element is `svg`)
    /// without scripts, event handlers or foreign objects.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ImageError> {
        if bytes.is_empty() || bytes.len() > MAX_IMAGE_LEN {
            return Err(ImageError::Size(bytes.len()));
        }
        let image_type = if bytes.starts_with(PNG_SIGNATURE) {
            check_png(&bytes)?;
            ImageType::Png
        } else {
            check_svg(&bytes)?;
            ImageType::Svg
        };
        Ok(Self { image_type, bytes })
    }

    /// The classic round official-seal image (印模) as SVG: a red ring, a five-pointed star
    /// in the middle, the department's Chinese name along the upper arc and the kind of seal
    /// (公章, 合同专用章, 业务专用章) below the star. The same inputs give the same bytes.
    pub fn official_svg(dept_name_zh: &str, seal_type: SealType) -> Self {
        Self {
            image_type: ImageType::Svg,
            bytes: round_seal_svg(dept_name_zh, seal_type_label(seal_type)).into_bytes(),
        }
    }

    /// The format.
    pub fn image_type(&self) -> ImageType {
        self.image_type
    }

    /// The image bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The image bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// SHA-256 of the image bytes: the seal record's `pictureDigest`.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.bytes)
    }
}

/// The words at the bottom of a generated seal image.
pub fn seal_type_label(seal_type: SealType) -> &'static str {
    match seal_type {
        SealType::Official => "公章",
        SealType::Contract => "合同专用章",
        SealType::Business => "业务专用章",
    }
}

fn check_png(bytes: &[u8]) -> Result<(), ImageError> {
    // Signature, then the IHDR chunk: length 13, type, width, height (big-endian, non-zero).
    let header = bytes
        .get(8..24)
        .ok_or_else(|| ImageError::UnknownFormat("PNG shorter than its header".to_owned()))?;
    if header[0..4] != [0, 0, 0, 13] || &header[4..8] != b"IHDR" {
        return Err(ImageError::UnknownFormat(
            "PNG does not start with an IHDR chunk".to_owned(),
        ));
    }
    if header[8..12] == [0; 4] || header[12..16] == [0; 4] {
        return Err(ImageError::UnknownFormat("PNG has a zero size".to_owned()));
    }
    Ok(())
}

fn check_svg(bytes: &[u8]) -> Result<(), ImageError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ImageError::UnknownFormat("no PNG signature and not UTF-8 text".to_owned()))?;
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    // Skip the XML declaration, processing instructions, comments and a DOCTYPE.
    loop {
        let skipped = if rest.starts_with("<?") {
            rest.find("?>").map(|i| &rest[i + 2..])
        } else if rest.starts_with("<!--") {
            rest.find("-->").map(|i| &rest[i + 3..])
        } else if rest.starts_with("<!DOCTYPE") || rest.starts_with("<!doctype") {
            rest.find('>').map(|i| &rest[i + 1..])
        } else {
            break;
        };
        rest = skipped
            .ok_or_else(|| ImageError::UnknownFormat("unterminated XML prologue".to_owned()))?
            .trim_start();
    }
    let is_svg = rest
        .strip_prefix("<svg")
        .and_then(|after| after.chars().next())
        .is_some_and(|c| c.is_whitespace() || c == '>' || c == '/');
    if !is_svg {
        return Err(ImageError::UnknownFormat(
            "no PNG signature and the root element is not <svg>".to_owned(),
        ));
    }
    let lower = text.to_ascii_lowercase();
    for (needle, what) in [
        ("<script", "a <script> element"),
        ("<foreignobject", "a <foreignObject> element"),
        ("javascript:", "a javascript: URL"),
        ("<iframe", "an <iframe> element"),
    ] {
        if lower.contains(needle) {
            return Err(ImageError::ActiveContent(what));
        }
    }
    // Event handler attributes: ` on<letters>=`.
    let b = lower.as_bytes();
    for (i, window) in b.windows(3).enumerate() {
        let is_handler = window[0].is_ascii_whitespace()
            && &window[1..] == b"on"
            && b[i + 3..]
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .is_some_and(|len| len > 0 && b.get(i + 3 + len) == Some(&b'='));
        if is_handler {
            return Err(ImageError::ActiveContent("an event handler attribute"));
        }
    }
    Ok(())
}

/// Escapes text for an XML text node or attribute.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Draws the round seal. Numbers are written with two decimals so the output is the same
/// wherever it is made.
fn round_seal_svg(name: &str, bottom: &str) -> String {
    let c = VIEW / 2.0;
    let chars: Vec<char> = name.chars().filter(|ch| !ch.is_control()).collect();
    let count = u32::try_from(chars.len().max(1)).unwrap_or(u32::MAX);
    // The name runs clockwise over the top, centred at 12 o'clock, over at most 250°.
    let span = (f64::from(count) * 24.0).min(250.0);
    let step = if count > 1 {
        span / f64::from(count - 1)
    } else {
        0.0
    };
    let text_radius = 70.0;
    let font = (text_radius * step.to_radians() * 0.95).clamp(10.0, 24.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{VIEW:.0}\" height=\"{VIEW:.0}\" \
         viewBox=\"0 0 {VIEW:.0} {VIEW:.0}\">\n\
         <title>{}</title>\n\
         <circle cx=\"{c:.2}\" cy=\"{c:.2}\" r=\"94.00\" fill=\"none\" stroke=\"{SEAL_RED}\" \
         stroke-width=\"6.00\"/>\n",
        xml_escape(&format!("{name}{bottom}"))
    );
    svg.push_str(&star_path(c, c, 30.0));
    let _ = writeln!(
        svg,
        "<g fill=\"{SEAL_RED}\" font-family=\"SimSun, STSong, 'Songti SC', 'Noto Serif CJK SC', \
         serif\" font-weight=\"bold\" text-anchor=\"middle\">"
    );
    let start = -span / 2.0;
    for (i, ch) in chars.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let angle = if count > 1 {
            start + step * f64::from(index)
        } else {
            0.0
        };
        let _ = writeln!(
            svg,
            "<text x=\"{c:.2}\" y=\"{:.2}\" font-size=\"{font:.2}\" \
             transform=\"rotate({angle:.2} {c:.2} {c:.2})\">{}</text>",
            c - text_radius + font / 2.0,
            xml_escape(&ch.to_string())
        );
    }
    let bottom_chars = u32::try_from(bottom.chars().count().max(1)).unwrap_or(u32::MAX);
    let bottom_font = (110.0 / f64::from(bottom_chars)).clamp(10.0, 18.0);
    let _ = writeln!(
        svg,
        "<text x=\"{c:.2}\" y=\"{:.2}\" font-size=\"{bottom_font:.2}\">{}</text>\n</g>\n</svg>",
        c + 58.0,
        xml_escape(bottom)
    );
    svg
}

/// A filled five-pointed star centred at (`cx`, `cy`) with outer radius `r`, one point up.
fn star_path(cx: f64, cy: f64, r: f64) -> String {
    let inner = r * 0.381_966; // r · sin 18° / sin 54°: the regular star's inner radius
    let mut d = String::new();
    for k in 0..10u32 {
        let radius = if k % 2 == 0 { r } else { inner };
        let angle = (f64::from(k) * 36.0 - 90.0).to_radians();
        let _ = write!(
            d,
            "{}{:.2},{:.2} ",
            if k == 0 { "M" } else { "L" },
            cx + radius * angle.cos(),
            cy + radius * angle.sin()
        );
    }
    format!("<path d=\"{}Z\" fill=\"{SEAL_RED}\"/>\n", d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_svg_is_deterministic_and_accepted() {
        let a = SealImage::official_svg("盘锦市市场监督管理局", SealType::Official);
        let b = SealImage::official_svg("盘锦市市场监督管理局", SealType::Official);
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        let text = std::str::from_utf8(a.bytes()).unwrap();
        assert!(text.starts_with("<svg "), "{text}");
        assert!(text.contains("<circle") && text.contains("<path d=\"M"));
        // One <text> a character of the name, plus the bottom line.
        assert_eq!(
            text.matches("<text ").count(),
            "盘锦市市场监督管理局".chars().count() + 1
        );
        assert!(text.contains(">公章</text>"));
        assert_eq!(
            SealImage::from_bytes(a.bytes().to_vec()).unwrap(),
            a,
            "the generated image passes the checks"
        );
        let contract = SealImage::official_svg("盘锦市市场监督管理局", SealType::Contract);
        assert_ne!(contract.digest(), a.digest());
        assert!(std::str::from_utf8(contract.bytes())
            .unwrap()
            .contains("合同专用章"));
        let escaped = SealImage::official_svg("A&B<局>", SealType::Business);
        let text = std::str::from_utf8(escaped.bytes()).unwrap();
        assert!(text.contains("&amp;") && text.contains("&lt;") && !text.contains("<局"));
    }

    #[test]
    fn png_and_svg_are_recognised_and_others_refused() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&[0, 0, 0, 13]);
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&[0, 0, 0, 64, 0, 0, 0, 64, 8, 6, 0, 0, 0]);
        assert_eq!(
            SealImage::from_bytes(png.clone()).unwrap().image_type(),
            ImageType::Png
        );
        let mut zero = png.clone();
        zero[16..20].copy_from_slice(&[0; 4]);
        assert!(SealImage::from_bytes(zero).is_err());
        assert!(SealImage::from_bytes(png[..12].to_vec()).is_err());

        let svg =
            "<?xml version=\"1.0\"?>\n<!-- seal -->\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert_eq!(
            SealImage::from_bytes(svg.as_bytes().to_vec())
                .unwrap()
                .image_type(),
            ImageType::Svg
        );
        for bad in [
            "",
            "hello",
            "<svgx/>",
            "<html><svg/></html>",
            "<?xml version=\"1.0\"",
            "<svg><script>alert(1)</script></svg>",
            "<svg onload=\"alert(1)\"/>",
            "<svg><a href=\"javascript:x\">a</a></svg>",
        ] {
            assert!(
                SealImage::from_bytes(bad.as_bytes().to_vec()).is_err(),
                "{bad:?}"
            );
        }
        assert!(SealImage::from_bytes(vec![0xff, 0xfe]).is_err());
        assert!(matches!(
            SealImage::from_bytes(vec![b' '; MAX_IMAGE_LEN + 1]),
            Err(ImageError::Size(_))
        ));
        // A word that merely starts with "on" is not an event handler.
        let fine = "<svg xmlns=\"http://www.w3.org/2000/svg\"><text> done once</text></svg>";
        assert!(SealImage::from_bytes(fine.as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn types_round_trip() {
        for t in [ImageType::Png, ImageType::Svg] {
            assert_eq!(ImageType::from_media_type(t.media_type()), Some(t));
            assert_eq!(ImageType::from_record_code(t.record_code()), Some(t));
        }
        assert_eq!(ImageType::from_media_type("image/gif"), None);
    }
}
