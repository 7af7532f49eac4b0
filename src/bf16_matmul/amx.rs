//! The AMX kernel: `TDPBF16PS` on tiles of 16 x 32 bf16, four result tiles (a 32 x 32
//! block) accumulated over the whole inner dimension in tile registers.
//!
//! Stable Rust has no AMX intrinsics, so the kernel is one `asm!` block; the assembler
//! knows the instructions. Linux hands the tile registers (8 KiB of state) only to a
//! process that asked for them once (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and each thread
//! must load a tile configuration before its first tile instruction.

use std::arch::asm;
use std::marker::PhantomData;
use std::sync::OnceLock;

use super::format::{TILE_COLS, TILE_K, TILE_LEN, TILE_ROWS};
use super::Accumulator;

/// Whether this CPU has AMX-BF16 and the kernel gave this process the tile state.
pub fn available() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| cpu_has_amx_bf16() && request_tile_state())
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
fn cpu_has_amx_bf16() -> bool {
    if std::arch::x86_64::__cpuid(0).eax < 7 {
        return false;
    }
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0
}

/// Asks Linux for the AMX tile data state (XFEATURE 18) for this process.
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with this request only changes the process's permitted
    // extended state; it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

/// The 64-byte tile configuration (palette 1): all eight tiles 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const ROW_BYTES: usize = TILE_K * 2;

/// Tiles configured on this thread for as long as it lives; released when dropped. Not
/// `Send`: the configuration belongs to the thread that loaded it.
pub struct Tiles(PhantomData<*const ()>);

impl Tiles {
    /// Configures the tiles on the calling thread; `None` unless `available()`.
    pub fn configure() -> Option<Tiles> {
        if !available() {
            return None;
        }
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        for tile in 0..8 {
            config.bytes_per_row[tile] = ROW_BYTES as u16;
            config.rows[tile] = TILE_ROWS as u8;
        }
        // SAFETY: the process holds the tile state (`available`); the configuration is
        // a valid palette-1 layout, 64 bytes and aligned.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
        Some(Tiles(PhantomData))
    }

    /// Adds to the 32 x 32 block at the start of `acc` (rows `row` f32 apart; zeroed
    /// first when `first`) the product of left panels `a` (two of 16 rows) and right
    /// panels `b` (two of 16 columns) over `tiles` tiles of 32 inner values each.
    pub fn block(&self, a: [&[u16]; 2], b: [&[u16]; 2], tiles: usize, out: Accumulator) {
        assert!(tiles > 0);
        for panel in a.iter().chain(&b) {
            assert!(panel.len() >= tiles * TILE_LEN);
        }
        let Accumulator { acc, row, first } = out;
        assert!(row >= 2 * TILE_COLS && acc.len() >= (2 * TILE_ROWS - 1) * row + 2 * TILE_COLS);
        let c = acc.as_mut_ptr();
        let stride = ROW_BYTES;
        let acc_stride = row * 4;
        let half_down = TILE_ROWS * acc_stride - TILE_COLS * 4;
        // SAFETY: the tiles are configured on this thread (`self`); every load reads
        // `tiles` tiles of 1 KiB from a panel checked above to hold them; the four
        // accumulator tiles (16 rows of 64 bytes, `acc_stride` apart) lie inside `acc`
        // (checked above).
        unsafe {
            if first {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
            } else {
                asm!(
                    "tileloadd tmm0, [{c} + {cs}*1]",
                    "add {c}, 64",
                    "tileloadd tmm1, [{c} + {cs}*1]",
                    "add {c}, {down}",
                    "tileloadd tmm2, [{c} + {cs}*1]",
                    "add {c}, 64",
                    "tileloadd tmm3, [{c} + {cs}*1]",
                    c = inout(reg) c => _,
                    cs = in(reg) acc_stride,
                    down = in(reg) half_down,
                    options(nostack, readonly)
                );
            }
            // Each operand tile is loaded right after the last product that reads it
            // (tile registers are not renamed: a load waits for its readers), so the
            // next step's operands arrive while this step's last products run.
            asm!(
                "tileloadd tmm4, [{a0} + {s}*1]",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tileloadd tmm7, [{b1} + {s}*1]",
                "tileloadd tmm5, [{a1} + {s}*1]",
                "dec {n}",
                "jz 3f",
                "2:",
                "add {a0}, 1024",
                "add {a1}, 1024",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm4, [{a0} + {s}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tileloadd tmm6, [{b0} + {s}*1]",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm5, [{a1} + {s}*1]",
                "tileloadd tmm7, [{b1} + {s}*1]",
                "dec {n}",
                "jnz 2b",
                "3:",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tilestored [{c} + {cs}*1], tmm0",
                "add {c}, 64",
                "tilestored [{c} + {cs}*1], tmm1",
                "add {c}, {down}",
                "tilestored [{c} + {cs}*1], tmm2",
                "add {c}, 64",
                "tilestored [{c} + {cs}*1], tmm3",
                a0 = inout(reg) a[0].as_ptr() => _,
                a1 = inout(reg) a[1].as_ptr() => _,
                b0 = inout(reg) b[0].as_ptr() => _,
                b1 = inout(reg) b[1].as_ptr() => _,
                n = inout(reg) tiles => _,
                c = inout(reg) c => _,
                s = in(reg) stride,
                cs = in(reg) acc_stride,
                down = in(reg) half_down,
                options(nostack),
            );
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: releasing configured tiles returns them to the init state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}
