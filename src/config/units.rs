//! Values with units, as people write them in flags, environment variables and config
//! files: sizes (`16MiB`, `512 MiB`, `2GB`, or plain bytes) and listen addresses that may
//! name a host (`localhost:4317`).

use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Deserializer};

/// Bytes in `text`: a whole number with an optional unit (`B`; `KiB`, `MiB`, `GiB`, `TiB`
/// and `K`, `M`, `G`, `T` in 1024s; `kB`, `KB`, `MB`, `GB`, `TB` in 1000s), spaces allowed
/// before the unit, case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let bad =
        || format!("{text:?} is no size: a number of bytes, or with a unit (16MiB, 512 MiB, 2GB)");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    number.checked_mul(multiplier).ok_or_else(bad)
}

/// [`parse_size`] for a `usize` setting.
pub fn parse_size_usize(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text)?;
    usize::try_from(bytes).map_err(|_| format!("{text:?} is too large"))
}

/// A listen address: `ip:port`, or `host:port` resolved now (the first address found).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|err| format!("{text:?} is no address (host:port or ip:port): {err}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// A size in a config file: a number of bytes or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn bytes(self) -> Result<u64, String> {
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            Self::Text(text) => parse_size(&text),
        }
    }
}

/// Deserializes a `u64` size (number or text with a unit).
pub fn size_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    SizeValue::deserialize(deserializer)?
        .bytes()
        .map_err(serde::de::Error::custom)
}

/// Deserializes a `usize` size (number or text with a unit).
pub fn size_usize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let bytes = size_u64(deserializer)?;
    usize::try_from(bytes).map_err(|_| serde::de::Error::custom("size too large"))
}

/// Deserializes a listen address that may name a host.
pub fn addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_addr(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        for (text, bytes) in [
            ("1000", 1000),
            ("16MiB", 16 << 20),
            ("512 MiB", 512 << 20),
            ("2gib", 2 << 30),
            ("64k", 64 << 10),
            ("2GB", 2_000_000_000),
            ("10 kB", 10_000),
            ("7b", 7),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "MiB", "-1", "1.5MiB", "12 parsecs", "99999999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_may_name_a_host() {
        assert_eq!(
            parse_addr("127.0.0.1:4317"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 4317)))
        );
        let local = parse_addr("localhost:4317").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 4317, "{local}");
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("no such host.invalid:1").is_err());
    }

    #[test]
    fn config_values_are_numbers_or_text() {
        #[derive(Deserialize)]
        struct Settings {
            #[serde(deserialize_with = "size_u64")]
            a: u64,
            #[serde(deserialize_with = "size_usize")]
            b: usize,
            #[serde(deserialize_with = "addr")]
            c: SocketAddr,
        }
        let settings: Settings =
            toml::from_str("a = 1024\nb = \"16 MiB\"\nc = \"localhost:8080\"").unwrap();
        assert_eq!(
            (settings.a, settings.b, settings.c.port()),
            (1024, 16 << 20, 8080)
        );
        assert!(toml::from_str::<Settings>("a = \"lots\"\nb = 1\nc = \"127.0.0.1:1\"").is_err());
    }
}
