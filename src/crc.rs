//! CRC-32C (Castagnoli), the checksum of data fingerprints and TensorBoard
//! records: reflected polynomial `0x82F63B78`, initial value and final XOR
//! `0xFFFFFFFF`. Slicing-by-8: eight 256-entry tables, built at compile
//! time, consume eight bytes per round; the remainder goes byte by byte.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `TABLES[0][b]` is the CRC register after shifting byte `b` through a
/// zero register; `TABLES[k][b]` is the same byte followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// The CRC-32C of `data`.
#[cfg(any(test, feature = "tensorboard"))]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// The CRC-32C of the bytes that gave `crc` followed by `data`:
/// `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let mut reg = !crc;
    let mut rounds = data.chunks_exact(8);
    for c in &mut rounds {
        let lo = reg ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        reg = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][c[4] as usize]
            ^ TABLES[2][c[5] as usize]
            ^ TABLES[1][c[6] as usize]
            ^ TABLES[0][c[7] as usize];
    }
    for &byte in rounds.remainder() {
        reg = (reg >> 8) ^ TABLES[0][((reg ^ byte as u32) & 0xff) as usize];
    }
    !reg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, straight from the definition: the oracle.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut reg = !0u32;
        for &byte in data {
            reg ^= byte as u32;
            for _ in 0..8 {
                reg = if reg & 1 == 1 {
                    (reg >> 1) ^ POLY
                } else {
                    reg >> 1
                };
            }
        }
        !reg
    }

    #[test]
    fn check_values() {
        // The catalogued check value of CRC-32C, and the empty input.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c_append(0x1234_5678, b""), 0x1234_5678);
        // 32 zero bytes and 32 0xff bytes (RFC 3720, B.4).
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn slicing_matches_bitwise_at_every_length_and_split() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 299, 300] {
            let d = &data[..len];
            assert_eq!(crc32c(d), crc32c_bitwise(d), "length {len}");
            for split in [0, len.min(1), len / 2, len] {
                let (a, b) = d.split_at(split);
                assert_eq!(
                    crc32c_append(crc32c(a), b),
                    crc32c(d),
                    "{len} split {split}"
                );
            }
        }
    }
}
