//! Rendering a compact licence payload as a QR code, in SVG or PNG.
//!
//! The payload (`BHL1:` + base45) uses only the QR alphanumeric alphabet, so the symbol is
//! encoded in alphanumeric mode; error correction level M survives a scuffed phone screen.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in PNG output.
const PNG_SCALE: usize = 4;
/// Quiet zone, in modules (the standard asks for 4).
const QUIET: usize = 4;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The payload does not fit a QR code.
    #[error("the payload does not fit a QR code: {0}")]
    TooLong(String),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// The QR symbol of `payload`, with its version (size) for the operator.
pub fn symbol(payload: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))
}

/// An SVG image of the symbol.
pub fn svg(code: &QrCode) -> String {
    code.render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(300, 300)
        .build()
}

/// A greyscale PNG image of the symbol.
pub fn png(code: &QrCode) -> Result<Vec<u8>, QrError> {
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (
                (i % width + QUIET) * PNG_SCALE,
                (i / width + QUIET) * PNG_SCALE,
            );
            for dy in 0..PNG_SCALE {
                let row = (y + dy) * side;
                pixels[row + x..row + x + PNG_SCALE].fill(0);
            }
        }
    }
    let side32 = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side32, side32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}
