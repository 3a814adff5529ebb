//! Sixteen bytes at a time: the few vector operations the prefilter's one pass needs.
//!
//! In WebAssembly built with `simd128` these are single `v128` instructions (the guest is built that
//! way, see `host/build.rs`); natively on x86-64 they are SSE2; elsewhere, plain arrays.

/// Bytes per vector.
pub const WIDTH: usize = 16;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::{
        i8x16_bitmask, i8x16_eq, i8x16_lt, i8x16_splat, v128, v128_and, v128_any_true, v128_load,
        v128_or,
    };

    /// Sixteen bytes in one `v128`.
    #[derive(Clone, Copy)]
    pub struct Lanes(v128);

    impl Lanes {
        #[inline(always)]
        pub fn load(bytes: &[u8; super::WIDTH]) -> Self {
            // SAFETY: the reference covers 16 readable bytes, and `v128.load` needs no alignment.
            #[allow(unsafe_code)]
            let vector = unsafe { v128_load(bytes.as_ptr().cast::<v128>()) };
            Self(vector)
        }

        #[inline(always)]
        pub fn splat(byte: u8) -> Self {
            Self(i8x16_splat(byte as i8))
        }

        #[inline(always)]
        pub fn eq(self, other: Self) -> Self {
            Self(i8x16_eq(self.0, other.0))
        }

        #[inline(always)]
        pub fn lt_signed(self, other: Self) -> Self {
            Self(i8x16_lt(self.0, other.0))
        }

        #[inline(always)]
        pub fn or(self, other: Self) -> Self {
            Self(v128_or(self.0, other.0))
        }

        #[inline(always)]
        pub fn and(self, other: Self) -> Self {
            Self(v128_and(self.0, other.0))
        }

        #[inline(always)]
        pub fn any(self) -> bool {
            v128_any_true(self.0)
        }

        /// The top bit of each lane, lane 0 in bit 0.
        #[inline(always)]
        pub fn bitmask(self) -> u16 {
            i8x16_bitmask(self.0)
        }
    }
}

#[cfg(target_arch = "x86_64")]
// SSE2 is part of the x86-64 baseline, so its intrinsics are always available here; the only other
// obligation, 16 readable bytes for the load, is stated where it is met.
#[allow(unsafe_code)]
mod imp {
    use core::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128,
    };

    /// Sixteen bytes in one SSE2 register.
    #[derive(Clone, Copy)]
    pub struct Lanes(__m128i);

    impl Lanes {
        #[inline(always)]
        pub fn load(bytes: &[u8; super::WIDTH]) -> Self {
            // SAFETY: the reference covers 16 readable bytes, and `loadu` needs no alignment.
            Self(unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) })
        }

        #[inline(always)]
        pub fn splat(byte: u8) -> Self {
            // SAFETY: SSE2 (x86-64 baseline).
            Self(unsafe { _mm_set1_epi8(byte as i8) })
        }

        #[inline(always)]
        pub fn eq(self, other: Self) -> Self {
            // SAFETY: SSE2 (x86-64 baseline).
            Self(unsafe { _mm_cmpeq_epi8(self.0, other.0) })
        }

        #[inline(always)]
        pub fn lt_signed(self, other: Self) -> Self {
            // SAFETY: SSE2 (x86-64 baseline).
            Self(unsafe { _mm_cmplt_epi8(self.0, other.0) })
        }

        #[inline(always)]
        pub fn or(self, other: Self) -> Self {
            // SAFETY: SSE2 (x86-64 baseline).
            Self(unsafe { _mm_or_si128(self.0, other.0) })
        }

        #[inline(always)]
        pub fn and(self, other: Self) -> Self {
            // SAFETY: SSE2 (x86-64 baseline).
            Self(unsafe { _mm_and_si128(self.0, other.0) })
        }

        #[inline(always)]
        pub fn any(self) -> bool {
            // SAFETY: SSE2 (x86-64 baseline).
            unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_setzero_si128())) != 0xFFFF }
        }

        #[inline(always)]
        pub fn bitmask(self) -> u16 {
            // SAFETY: SSE2 (x86-64 baseline).
            unsafe { _mm_movemask_epi8(self.0) as u16 }
        }
    }
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
mod imp {
    pub use super::words::Lanes;
}

/// Sixteen bytes as two 64-bit words, each operation a few word instructions on all eight bytes at
/// once (SWAR): for builds without vectors, such as the Fluent Bit and Extism modules that WAMR and
/// Chicory interpret, where a byte at a time costs an interpreted instruction per byte and per
/// operation. Lanes that hold a truth are 0xFF or 0x00, as the vector instructions give them.
#[cfg(any(
    test,
    not(any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_arch = "x86_64"
    ))
))]
mod words {
    use super::WIDTH;

    /// The low seven bits of every byte.
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    /// The top bit of every byte.
    const HIGH: u64 = !LOW;

    /// Sixteen bytes in two little-endian words: byte `i` is lane `i`.
    #[derive(Clone, Copy)]
    pub struct Lanes([u64; 2]);

    /// From a word whose bytes' top bits say true or false, a word whose bytes are 0xFF or 0x00.
    #[inline(always)]
    fn widen(top_bits: u64) -> u64 {
        ((top_bits & HIGH) >> 7) * 0xff
    }

    /// Where the bytes of `x` are zero, exactly (no false positives from borrows).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !(((x & LOW) + LOW) | x) & HIGH
    }

    impl Lanes {
        #[inline(always)]
        fn zip(self, other: Self, op: impl Fn(u64, u64) -> u64) -> Self {
            Self([op(self.0[0], other.0[0]), op(self.0[1], other.0[1])])
        }

        #[inline(always)]
        pub fn load(bytes: &[u8; WIDTH]) -> Self {
            let (low, high) = bytes.split_at(WIDTH / 2);
            let word = |half: &[u8]| half.try_into().map_or(0, u64::from_le_bytes);
            Self([word(low), word(high)])
        }

        #[inline(always)]
        pub fn splat(byte: u8) -> Self {
            Self([u64::from(byte) * 0x0101_0101_0101_0101; 2])
        }

        #[inline(always)]
        pub fn eq(self, other: Self) -> Self {
            self.zip(other, |a, b| widen(zero_bytes(a ^ b)))
        }

        #[inline(always)]
        pub fn or(self, other: Self) -> Self {
            self.zip(other, |a, b| a | b)
        }

        #[inline(always)]
        pub fn and(self, other: Self) -> Self {
            self.zip(other, |a, b| a & b)
        }

        #[inline(always)]
        pub fn any(self) -> bool {
            self.0[0] | self.0[1] != 0
        }

        /// The top bit of each lane, lane 0 in bit 0.
        #[inline(always)]
        pub fn bitmask(self) -> u16 {
            // The multiplication gathers the eight top bits into the word's top byte.
            let gather =
                |word: u64| ((word & HIGH).wrapping_mul(0x0002_0408_1020_4081) >> 56) as u16;
            gather(self.0[0]) | gather(self.0[1]) << 8
        }

        #[cfg(test)]
        pub fn bytes(self) -> [u8; WIDTH] {
            let mut out = [0; WIDTH];
            out[..8].copy_from_slice(&self.0[0].to_le_bytes());
            out[8..].copy_from_slice(&self.0[1].to_le_bytes());
            out
        }
    }
}

pub use imp::Lanes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        let bytes = *b"{a}[\\\x01\xff bcdefghi";
        let lanes = Lanes::load(&bytes);
        let open = lanes.eq(Lanes::splat(b'{'));
        assert_eq!(open.bitmask(), 1);
        // 0x01 and 0xff are below 0x20 as signed bytes.
        assert_eq!(lanes.lt_signed(Lanes::splat(0x20)).bitmask(), 0b110_0000);
        let zero = Lanes::splat(0);
        assert!(!lanes.and(zero).any());
        assert!(lanes.or(zero).any());
        assert!(!zero.any());
        assert_eq!(open.or(lanes.eq(Lanes::splat(b'}'))).and(open).bitmask(), 1);
        assert_eq!(lanes.lt_signed(zero).bitmask(), 1 << 6);
    }

    /// The word-at-a-time lanes give, byte for byte, what the vector instructions give, on random
    /// bytes and on bytes chosen around the edges of each operation (equal, 0x00, 0x7f, 0x80, 0xff).
    #[test]
    fn words_equal_vectors() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        let edges = [
            0x00, 0x01, 0x1f, 0x20, 0x5c, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff,
        ];
        let mut byte = || {
            let r = next();
            if r.is_multiple_of(3) {
                edges[(r >> 8) as usize % edges.len()]
            } else {
                (r >> 16) as u8
            }
        };
        let lanes_of = |v: Lanes| {
            let mut out = [0u8; WIDTH];
            for (i, lane) in out.iter_mut().enumerate() {
                *lane = if v.bitmask() >> i & 1 == 1 { 0xff } else { 0 };
            }
            out
        };
        for _ in 0..20_000 {
            let a: [u8; WIDTH] = std::array::from_fn(|_| byte());
            let mut b: [u8; WIDTH] = std::array::from_fn(|_| byte());
            // Some lanes equal.
            for (i, lane) in b.iter_mut().enumerate() {
                if (a[i] ^ *lane) & 3 == 0 {
                    *lane = a[i];
                }
            }
            let (va, vb) = (Lanes::load(&a), Lanes::load(&b));
            let (wa, wb) = (words::Lanes::load(&a), words::Lanes::load(&b));
            assert_eq!(wa.eq(wb).bytes(), lanes_of(va.eq(vb)), "{a:?} {b:?}");
            assert_eq!(wa.bitmask(), va.bitmask());
            assert_eq!(wa.or(wb).bitmask(), va.or(vb).bitmask());
            assert_eq!(wa.and(wb).bitmask(), va.and(vb).bitmask());
            assert_eq!(wa.and(wb).any(), va.and(vb).any());
            assert_eq!(
                wa.eq(words::Lanes::splat(a[3])).bitmask(),
                va.eq(Lanes::splat(a[3])).bitmask()
            );
        }
    }
}
