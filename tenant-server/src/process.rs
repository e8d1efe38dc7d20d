//! Figures of this server process that the operating system keeps.

/// Resident set size of this process, in bytes; `None` where it cannot be read.
pub fn resident_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // second field of statm: resident pages
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(page_size).ok().map(|size| pages * size)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_a_plausible_rss() {
        let rss = super::resident_bytes().expect("rss on linux");
        assert!(rss > 1 << 20, "{rss}");
    }
}
