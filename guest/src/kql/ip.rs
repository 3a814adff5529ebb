//! IP fields: addresses compare by value in any spelling Elasticsearch accepts (IPv4 is stored as
//! IPv4-mapped IPv6, so `10.0.0.1` and `::ffff:10.0.0.1` are one address), and a value with `/` is a
//! CIDR block.

use std::net::IpAddr;

/// An address as Elasticsearch stores it: 128 bits, IPv4 mapped into IPv6.
pub fn parse(text: &str) -> Option<u128> {
    match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(u128::from(v4.to_ipv6_mapped())),
        IpAddr::V6(v6) => Some(u128::from(v6)),
    }
}

/// A block of addresses: those whose first `prefix` bits equal the network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    network: u128,
    prefix: u32,
}

impl Block {
    /// Parses `address/prefix` (prefix 0-32 for IPv4, 0-128 for IPv6) or a lone address (a block of
    /// one).
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let is_v4 = address.trim().parse::<IpAddr>().ok()?.is_ipv4();
        let network = parse(address)?;
        let prefix = match prefix {
            None => 128,
            Some(digits) => {
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || digits.len() > 3
                {
                    return None;
                }
                let bits: u32 = digits.parse().ok()?;
                let (max, offset) = if is_v4 { (32, 96) } else { (128, 0) };
                if bits > max {
                    return None;
                }
                bits + offset
            }
        };
        Some(Self { network, prefix })
    }

    /// Whether `address` is in the block.
    pub fn contains(&self, address: u128) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        };
        address & mask == self.network & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_and_spellings() {
        let block = Block::parse("10.0.0.0/8").unwrap_or(Block {
            network: 0,
            prefix: 128,
        });
        assert!(block.contains(parse("10.1.2.3").unwrap_or_default()));
        assert!(block.contains(parse("::ffff:10.1.2.3").unwrap_or_default()));
        assert!(!block.contains(parse("11.0.0.1").unwrap_or_default()));
        assert_eq!(parse("::1"), parse("0:0:0:0:0:0:0:1"));
        assert_eq!(parse("FC00::1"), parse("fc00:0::1"));
        let v6 = Block::parse("FC00::/7");
        assert!(v6.is_some_and(|b| b.contains(parse("fd12::5").unwrap_or_default())));
        assert_eq!(Block::parse("10.0.0.0/33"), None);
        assert_eq!(Block::parse("10.0.0.0/"), None);
        assert_eq!(Block::parse("not an ip"), None);
        let everything = Block::parse("0.0.0.0/0");
        assert!(everything.is_some_and(|b| b.contains(parse("1.2.3.4").unwrap_or_default())));
    }
}
