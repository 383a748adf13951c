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
    /// Another device, named by `fingerprint` (a site server activating a
    /// client, a vendor's books), with this machine's host name and no
    /// virtual machine declared. It is not this engine's device: only
    /// activating [`Device::this_machine`] (or
    /// [`Engine::activate_this_device`](crate::Engine::activate_this_device))
    /// gives this engine its node-locked rights.
    pub fn new(fingerprint: impl Into<String>) -> Self {
        Device {
            fingerprint: fingerprint.into(),
            hostname: hostname(),
            vm: false,
        }
    }

    /// This machine: its fingerprint ([`machine_fingerprint`]), host name,
    /// and whether it runs as a virtual machine
    /// ([`detect_virtual_machine`]). `DEVICE_UNKNOWN` where the operating
    /// system gives no machine id.
    pub fn this_machine() -> crate::Result<Self> {
        let fingerprint = machine_fingerprint().ok_or_else(unknown)?;
        Ok(Device {
            fingerprint,
            hostname: hostname(),
            vm: detect_virtual_machine(),
        })
    }
}

/// The error when this machine has no identity to bind rights to.
pub(crate) fn unknown() -> crate::Error {
    crate::Error::denied(
        crate::Reason::DeviceUnknown,
        "this machine gives no machine id to identify it, so no license can be locked to it",
    )
}

/// This machine's device fingerprint (docs/semantics.md#devices): the hex of the
/// first 16 bytes of SHA-256 of `"entitle-device:"` and the operating
/// system's machine id, so the raw id never leaves the machine. `None`
/// when the system gives none: a host name is never a fingerprint, and
/// node-locked rights are then denied.
///
/// Where the machine id comes from, by the `machine-uid` crate: Linux
/// `/var/lib/dbus/machine-id`, else `/etc/machine-id`; macOS
/// `IOPlatformUUID` (`ioreg -rd1 -c IOPlatformExpertDevice`); Windows the
/// `MachineGuid` value of `HKLM\SOFTWARE\Microsoft\Cryptography`; the
/// BSDs `/etc/hostid`, else `kenv -q smbios.system.uuid`; illumos
/// `gethostid()`. Elsewhere, or when the id is empty, there is none.
///
/// ```
/// let a = entitle::device::machine_fingerprint();
/// assert_eq!(a, entitle::device::machine_fingerprint());
/// assert!(a.is_none_or(|f| f.len() == 32));
/// ```
pub fn machine_fingerprint() -> Option<String> {
    fingerprint_of(&machine_id()?)
}

/// The fingerprint of a machine id (empty or blank: none).
pub(crate) fn fingerprint_of(machine_id: &str) -> Option<String> {
    let id = machine_id.trim();
    if id.is_empty() {
        return None;
    }
    let digest = Sha256::digest(format!("entitle-device:{id}").as_bytes());
    Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(any(
    target_os = "linux",
    target_os = "windows",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "illumos"
))]
fn machine_id() -> Option<String> {
    machine_uid::get().ok()
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "windows",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "illumos"
)))]
fn machine_id() -> Option<String> {
    None
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

/// Whether this machine looks like a virtual machine. A determined user can
/// hide it; this catches the ordinary case. What is looked at, by platform:
///
/// - x86 (every system): the CPU's "hypervisor present" bit (CPUID leaf 1),
///   which is what Windows and macOS report as a virtual machine too;
/// - Linux: also the `hypervisor` flag in `/proc/cpuinfo` and a
///   hypervisor's name in the DMI product or vendor (`/sys/class/dmi/id`),
///   which covers non-x86 guests;
/// - macOS on Apple silicon: `sysctl kern.hv_vmm_present`.
///
/// Elsewhere nothing is detected: declare a virtual machine with
/// [`EngineBuilder::virtual_machine`](crate::EngineBuilder::virtual_machine).
pub fn detect_virtual_machine() -> bool {
    cpu_hypervisor_bit() || linux_says_virtual() || macos_says_virtual()
}

#[cfg(target_arch = "x86_64")]
fn cpu_hypervisor_bit() -> bool {
    std::arch::x86_64::__cpuid(1).ecx & (1 << 31) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_hypervisor_bit() -> bool {
    false
}

#[cfg(target_os = "macos")]
fn macos_says_virtual() -> bool {
    std::process::Command::new("sysctl")
        .args(["-n", "kern.hv_vmm_present"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "1")
}

#[cfg(not(target_os = "macos"))]
fn macos_says_virtual() -> bool {
    false
}

fn linux_says_virtual() -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_fingerprint_on_linux_is_the_one_entitle_always_made() {
        // As the first versions made it (so activations made then still
        // hold): SHA-256 of "entitle-device:" and /etc/machine-id, the
        // first 16 bytes in hex.
        let Some(id) = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .filter(|id| !id.trim().is_empty())
        else {
            assert_eq!(machine_fingerprint(), None, "no machine id, no fingerprint");
            return;
        };
        let digest = Sha256::digest(format!("entitle-device:{}", id.trim()).as_bytes());
        let expected: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(machine_fingerprint(), Some(expected));
    }

    #[test]
    fn a_blank_machine_id_is_no_fingerprint() {
        assert_eq!(fingerprint_of("  \n"), None);
        assert_eq!(fingerprint_of("abc").map(|f| f.len()), Some(32));
    }
}
