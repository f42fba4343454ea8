"""Tart simulator: Tart's CLI contract (arguments, JSON, stderr messages, exit
codes, the fcntl lock on config.json, a blocking `run`, SIGINT/SIGUSR1) on any
POSIX host, since real Tart runs only on Apple Silicon Macs. Stdlib only; all
state lives under $TART_HOME. Deliberate choices:
- `run` of an OCI name fails "does not exist" (exit 2): Tart's `run` opens local
  storage only; an OCI image must be cloned first.
- The VM limit counts running macOS guests only and applies only when starting
  one, like Apple's licence enforced by Virtualization.framework.
- TART_SIM_RUN_FAIL fails `run` (exit 1, the message on stderr) about 0.3 s after
  it starts and before it takes the lock, as Tart does when it cannot start a VM.
- A VM run without --suspendable logs an error on SIGUSR1 and keeps running.
- The guest ending by itself: a file `.tart-sim-guest-exit` in the VM's directory
  (holding an exit code, e.g. 0) makes its `run` end with that code at its next look
  (every 0.05 s), as `tart run` returns when the guest shuts down (0) or the VM
  fails (non-zero). The file is consumed.
- A test's gate: while a file `.tart-sim-run-gate` is in the VM's directory, its
  `run` waits (after TART_SIM_RUN_DELAY, before it takes the lock, looking every
  0.05 s), so a test decides when a start under way may go on.
- TART_SIM_HANG_CHILD=PATH, with TART_SIM_HANG: the hanging command first forks a
  child that hangs too (in its process group, holding its stdout/stderr) and writes
  the child's pid to PATH, so a test can tell whether a timeout killed the group.
- Pulls come from a small built-in registry (CATALOGUE); any other reference fails
  as a registry's 404 would. The OCI cache is laid out as Tart's: one directory per
  digest (`NAMESPACE/sha256:HEX`) and a symlink per tag, so `list` shows both forms.
  The demo seed's image is an older layout, a plain tag directory: it lists only by
  its tag, and counts as cached and linked.
- Pull progress runs on the real clock: TART_SIM_PULL_SECONDS for the whole disk,
  a percentage line at most every TART_SIM_PROGRESS_INTERVAL seconds (Tart: 1 s).
- Like Tart, `clone` does not print the `pulling REF...` line that `pull` prints,
  and a clone of a cached image prints nothing at all.
- The guest's address: each VM gets its own loopback address 127.A.B.C (from TART_HOME and
  its name; Linux routes all of 127/8 to the loopback interface; elsewhere 127.0.0.1), or
  TART_SIM_GUEST_IP for every VM. Never an address off this machine, so that whatever probes
  the guest (the operator's readiness check) only ever talks to loopback.
- The guest "boots": `ip` answers TART_SIM_BOOT_DELAY seconds after `run` took the lock, and
  TART_SIM_SSH_DELAY seconds after that the `run` process itself listens on the guest's
  address, port TART_SIM_GUEST_PORT (default 22, as a guest's sshd), and greets each
  connection with an SSH banner: the listener lives and dies with the run.
- Each local VM is its own directory, `$TART_HOME/vms/NAME/`, as Tart's: `clone` builds
  a new one in a temporary directory and moves it into place, `rename` moves it, nothing
  else replaces it (the operator tells VMs of one name apart by that directory's identity).
- `exec` runs the command as a real process of this machine (its own working directory,
  `guest/` in the VM's directory, is the guest's "filesystem"), with a guest's environment
  (PATH, HOME, USER=admin), never the caller's; stdout and stderr apart, Tart's exit code the
  command's (128+N when a signal N ended it). A VM cloned from an image whose name ends in
  `-vanilla` (the catalogue has `ghcr.io/cirruslabs/macos-sequoia-vanilla`) has no agent, nor
  has a guest before it booted: Tart's "is the Tart Guest Agent running?" (exit 1). A command
  that cannot be started: `Error: failed to run "CMD": REASON` (exit 1). `-t` runs it on a
  pseudo-terminal (stdout and stderr merged there) the size of Tart's own, resizes (SIGWINCH)
  followed. A clone does not copy `guest/`. When the
  VM stops meanwhile, the command is killed and exec fails (exit 1; the message is ours).
- No automatic pruning (TART_NO_AUTO_PRUNE, --prune-limit): the simulated disks take
  no space. Minimums Tart cannot read here (Virtualization.framework's): 1 CPU and
  128 MiB of memory.

Run it as `tart-simulator ARGS` (the console script of an installed operator),
`python -m vm_operator.simulator ARGS`, or bin/tart-simulator in a checkout. It imports
nothing from vm_operator outside this package (its modules import each other relatively), so
``onefile.build`` packs it as one executable file for a host without vm_operator (the SSH
tests' host, where it is `tart`).

Its modules: ``cli`` (arguments, the global knobs, the entry point), ``knobs`` (every
TART_SIM_* variable, declared once, read once at start-up), ``errors``, ``files``,
``storage`` (TART_HOME's layout, each guest's address), ``locks``, ``registry`` (images,
pulls, the demo seed), ``listing`` (list, get, ip), ``lifecycle`` (clone, delete, create,
pull, set, rename, prune), ``power`` (run, stop, suspend), ``guest`` (the simulated guest's
boot and port), ``agent`` (its guest agent: exec).
"""

from .cli import COMMANDS, main

__all__ = ["COMMANDS", "main"]
