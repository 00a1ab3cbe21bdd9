//! How much memory one run may take: by default half of what the machine (or its container) has available when
//! the run starts, or what `--max-memory` says. Loaders and the trainer check their estimates against it before allocating,
//! so a typo in a spec or an image size is refused with a message instead of swapping the machine to a halt.

use std::sync::atomic::{AtomicU64, Ordering};

/// `--max-memory`, in bytes (0: not given).
static MAX_MEMORY: AtomicU64 = AtomicU64::new(0);

/// The memory a run may take, and where that figure came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// E.g. "half of the 21.3 GiB available" or "--max-memory 8G".
    pub source: String,
}

/// Sets the budget for this process (`--max-memory`); `None` goes back to half the available memory.
pub fn set_max_memory(bytes: Option<u64>) {
    MAX_MEMORY.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// This process's budget, or `None` where the available memory cannot be read (then nothing is refused).
pub fn memory_budget() -> Option<Budget> {
    match MAX_MEMORY.load(Ordering::Relaxed) {
        0 => available_at_start().map(|available| Budget {
            bytes: available / 2,
            source: format!("half of the {} available", bytes(available)),
        }),
        max => Some(Budget { bytes: max, source: format!("--max-memory {}", bytes(max)) }),
    }
}

/// The memory available when the process first asked: read once, so the budget does not shrink under the
/// run's own net (a rebuild of a net that fits would otherwise be refused for the memory the old one holds).
fn available_at_start() -> Option<u64> {
    static AVAILABLE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(available_memory)
}

/// The memory the system could give this process now: `MemAvailable` in /proc/meminfo, or less when a cgroup
/// (a container) limits the process to less.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let available = kib.checked_mul(1024)?;
    Some(cgroup_room().map_or(available, |room| room.min(available)))
}

/// What the cgroup v2 limit leaves (`memory.max` − `memory.current`), where there is a limit.
fn cgroup_room() -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Parses a size such as `8G`, `512M`, `1.5GiB` or `2000000000` (bytes; K, M, G, T are powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale: u64 = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("`{text}`: unknown unit `{unit}`; use a number of bytes with K, M, G or T, e.g. 8G")),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a size; use e.g. 8G or 512M"))?;
    let total = value * scale as f64;
    if !(total.is_finite() && total >= 1.0 && total < u64::MAX as f64) {
        return Err(format!("`{text}` is out of range; use a size such as 8G or 512M"));
    }
    Ok(total as u64)
}

/// A byte count for people: "512 MiB", "4.8 GiB".
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{count} bytes"),
        _ if value < 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.0} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2000"), Ok(2000));
        assert!(parse_size("8X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").is_err() && parse_size("0").is_err() && parse_size("1e300G").is_err());
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(5_200_000_000), "4.8 GiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
    }
}
