//! The baseline: `bpftool prog load OBJ PIN`, one process per program, into
//! the benchmark's own bpffs. It loads the same object (program and map) and
//! pins the program, which is the kernel work a bpfman load also does.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::backend::run_command;
use crate::error::{BenchError, Result};
use crate::sandbox::check_stop;
use crate::stats::Samples;

/// Loads `object` `n` times with bpftool, pinning at `<fs>/bench_<i>`, and
/// removes every pin afterwards (which frees the programs), also on error.
pub fn bpftool_loads(bpftool: &Path, object: &Path, fs: &Path, n: usize) -> Result<Samples> {
    let res = load_n(bpftool, object, fs, n);
    let removed = remove_pins(fs);
    let samples = res?;
    let removed = removed?;
    if removed != n {
        return Err(BenchError::Check(format!(
            "bpftool made {removed} pins in {}, expected {n}",
            fs.display()
        )));
    }
    Ok(samples)
}

fn load_n(bpftool: &Path, object: &Path, fs: &Path, n: usize) -> Result<Samples> {
    let mut s = Samples::new();
    for i in 0..n {
        check_stop()?;
        let pin = fs.join(format!("bench_{i}"));
        let mut cmd = Command::new(bpftool);
        cmd.args(["prog", "load"])
            .arg(object)
            .arg(&pin)
            .stdin(Stdio::null());
        s.time(|| run_command(&mut cmd))?;
    }
    Ok(s)
}

/// Removes the `bench_*` pins; returns how many there were.
fn remove_pins(fs: &Path) -> Result<usize> {
    let rd =
        std::fs::read_dir(fs).map_err(|e| BenchError::io(format!("read {}", fs.display()), e))?;
    let mut n = 0;
    for e in rd {
        let e = e.map_err(|e| BenchError::io(format!("read {}", fs.display()), e))?;
        if e.file_name().to_string_lossy().starts_with("bench_") {
            std::fs::remove_file(e.path())
                .map_err(|err| BenchError::io(format!("remove {}", e.path().display()), err))?;
            n += 1;
        }
    }
    Ok(n)
}
