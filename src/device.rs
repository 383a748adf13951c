//! The device an engine runs on: a default fingerprint and a default
//! virtual-machine detector. Both can be overridden by the host program.

use sha2::{Digest, Sha256};

/// A device asking for activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// A stable identifier of the machine.
    pub fingerprint: String,
    /// Its host name, for people reading activation lists.
    pub hostname: String,
    /// Whether it is a virtual machine.
    pub vm: bool,
}

impl Device {
    /// A device with this fingerprint, this machine's host name, and no
    /// virtual machine declared.
    pub fn new(fingerprint: impl Into<String>) -> Self {
        Device {
            fingerprint: fingerprint.into(),
            hostname: hostname(),
            vm: false,
        }
    }

    /// This machine: the default fingerprint and the default detector.
    pub fn this_machine() -> Self {
        Device {
            fingerprint: default_fingerprint(),
            hostname: hostname(),
            vm: detect_virtual_machine(),
        }
    }
}

/// A fingerprint of this machine: SHA-256 of the operating system's
/// machine id (`/etc/machine-id` on Linux), so the raw id never leaves the
/// machine; falls back to the host name.
///
/// ```
/// let a = entitle::device::default_fingerprint();
/// assert_eq!(a, entitle::device::default_fingerprint());
/// assert_eq!(a.len(), 32);
/// ```
pub fn default_fingerprint() -> String {
    let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(hostname);
    let digest = Sha256::digest(format!("entitle-device:{id}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// This machine's host name, or `unknown`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether this machine looks like a virtual machine: the CPU's
/// `hypervisor` flag or a hypervisor's DMI product or vendor name. A
/// determined user can hide both; this catches the ordinary case.
pub fn detect_virtual_machine() -> bool {
    let cpu_flag = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
    });
    const NAMES: [&str; 9] = [
        "kvm",
        "qemu",
        "vmware",
        "virtualbox",
        "virtual machine",
        "xen",
        "bochs",
        "parallels",
        "hyper-v",
    ];
    let dmi = ["product_name", "sys_vendor", "board_vendor"]
        .iter()
        .any(|f| {
            std::fs::read_to_string(format!("/sys/class/dmi/id/{f}"))
                .is_ok_and(|v| NAMES.iter().any(|n| v.to_lowercase().contains(n)))
        });
    cpu_flag || dmi
}
