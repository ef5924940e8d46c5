//! What keeps libm.so.6 out of the process (libgcc_s: see
//! build/static_unwinder.rs).
//!
//! The binary calls one libm function, `pow` (tokio's scheduler statistics),
//! and for that one symbol every `bpfman` process made the dynamic loader
//! map and relocate libm.so.6: about 0.1 ms of each CLI call on this
//! project's VMs. Defined here, the symbol resolves inside the binary and the
//! linker (`--as-needed`) drops libm.so.6. tests/startup.rs checks what the
//! binary needs.

/// C's `pow(x, y)`, for the calls `f64::powf` compiles to: the `libm` crate's
/// port of musl's implementation, within one ulp (glibc's is correctly
/// rounded; tokio computes a decay factor with it). Not exported for dynamic
/// linking: an executable's symbols are not, unless a shared library refers
/// to them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    /// Through `powf`, which is how Rust code reaches the symbol.
    #[test]
    fn powf_goes_through_the_shim_and_is_right() {
        let p = |x: f64, y: f64| std::hint::black_box(x).powf(std::hint::black_box(y));
        assert_eq!(p(2.0, 10.0), 1024.0);
        assert_eq!(p(10.0, -2.0), 0.01);
        assert_eq!(p(9.0, 0.5), 3.0);
        assert_eq!(p(0.0, 0.0), 1.0);
        assert!(p(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(p(0.0, -1.0), f64::INFINITY);
        // tokio's use: a decay factor, (1 - alpha)^n.
        let decay = p(1.0 - 0.1, 7.0);
        assert!((decay - 0.478_296_9).abs() < 1e-12, "{decay}");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_eq!(super::pow(3.0, 4.0), 81.0);
    }

    /// The unwinder is linked statically (build.rs): a panic still unwinds
    /// through frames and is caught, and a backtrace still walks the stack.
    #[test]
    fn panics_unwind_and_backtraces_walk_with_the_static_unwinder() {
        #[inline(never)]
        fn deep(n: u32) -> u32 {
            if n == 0 {
                // Unwinds like a panic, without the panic hook's message.
                std::panic::resume_unwind(Box::new("deliberate"));
            }
            deep(std::hint::black_box(n - 1)) + 1
        }
        let caught = std::panic::catch_unwind(|| deep(5));
        assert!(caught.is_err());
        let bt = std::backtrace::Backtrace::force_capture();
        assert_eq!(bt.status(), std::backtrace::BacktraceStatus::Captured);
        let text = bt.to_string();
        assert!(
            text.contains("panics_unwind_and_backtraces_walk_with_the_static_unwinder"),
            "{text}"
        );
    }
}
