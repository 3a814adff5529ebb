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
    use super::WIDTH;

    /// Sixteen bytes in an array.
    #[derive(Clone, Copy)]
    pub struct Lanes([u8; WIDTH]);

    impl Lanes {
        #[inline(always)]
        fn zip(self, other: Self, op: impl Fn(u8, u8) -> u8) -> Self {
            let mut out = [0; WIDTH];
            for ((out, a), b) in out.iter_mut().zip(self.0).zip(other.0) {
                *out = op(a, b);
            }
            Self(out)
        }

        pub fn load(bytes: &[u8; WIDTH]) -> Self {
            Self(*bytes)
        }

        pub fn splat(byte: u8) -> Self {
            Self([byte; WIDTH])
        }

        pub fn eq(self, other: Self) -> Self {
            self.zip(other, |a, b| if a == b { 0xFF } else { 0 })
        }

        pub fn lt_signed(self, other: Self) -> Self {
            self.zip(other, |a, b| if (a as i8) < (b as i8) { 0xFF } else { 0 })
        }

        pub fn or(self, other: Self) -> Self {
            self.zip(other, |a, b| a | b)
        }

        pub fn and(self, other: Self) -> Self {
            self.zip(other, |a, b| a & b)
        }

        pub fn any(self) -> bool {
            self.0.iter().any(|&lane| lane != 0)
        }

        pub fn bitmask(self) -> u16 {
            self.0.iter().enumerate().fold(0, |mask, (index, &lane)| {
                mask | (u16::from(lane >> 7) << index)
            })
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
}
