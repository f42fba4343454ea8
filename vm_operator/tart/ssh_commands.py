"""The SSH transport's command lines (pure): the ssh argument list and the remote scripts.

Safety of the remote command line. ``ssh`` hands the remote login shell ONE string. That
string is built here from words, every one passed through ``shlex.quote``; the logic that
runs remotely is a fixed ``/bin/sh -c`` script (constant text, below) and every value (VM
names, paths, Tart's arguments) reaches it as a positional parameter, never as script text.
A VM name therefore can never become a command. ``BatchMode=yes`` and ``ConnectTimeout``
make sure nothing ever waits for a prompt or a dead host.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from urllib.parse import quote

from vm_operator.store.state import LOG_GENERATIONS, LogTail, cut_tail
from vm_operator.tart.errors import TartError
from vm_operator.tart.ssh_settings import SshSettings

REMOTE_LOG_DIR = ".vm-operator/logs"  # relative to the remote user's home
EXEC_GROUP_DIR = ".vm-operator/exec"  # the process groups of interactive execs, by token
# Where Homebrew puts tart. `ssh host cmd` runs a NON-login shell, whose PATH on macOS is
# /usr/bin:/bin:/usr/sbin:/sbin: appended (never prepended) so that a plain `tart` resolves.
REMOTE_PATH_EXTRA = "/opt/homebrew/bin:/usr/local/bin"
WAIT_DELAY = 0.2  # seconds between two looks at the remote run, on the host
WAIT_TICKS = 300  # looks per waiter ssh call: one connection per minute per running VM
LOG_MISSING = 3  # exit code of LOG_SCRIPT when the run log does not exist

# --- the remote scripts: constant text; every value comes in as "$1", "$2", ... ---------

_PATH_SETUP = f'PATH="$PATH:{REMOTE_PATH_EXTRA}"; export PATH; '
_NEED_TART = (
    'command -v "$1" >/dev/null 2>&1 || '
    '{ echo "vm-operator: $1: not found on this host (PATH=$PATH)" >&2; exit 127; }; '
)

# sh -c TART_SCRIPT vm-operator TART ARGS...: run Tart.
TART_SCRIPT = _PATH_SETUP + _NEED_TART + 'exec "$@"'

# sh -c STREAM_SCRIPT vm-operator TART ARGS...: run Tart (a clone, a pull) in the background and
# watch this session's stdin, which the operator holds open and never writes: when it ends (the
# local ssh was killed to cancel the call, or the connection broke), Tart gets SIGTERM instead
# of running on unseen. Exits with Tart's exit code (128+N: killed by signal N). The stdin is
# kept on descriptor 3 first: sh gives a background list /dev/null as its stdin.
STREAM_SCRIPT = (
    _PATH_SETUP + _NEED_TART
    + 'exec 3<&0 </dev/null; '
    + '"$@" 3<&- & tart=$!; '
    + '{ cat <&3 >/dev/null 2>&1; kill -TERM "$tart" 2>/dev/null; } >/dev/null 2>&1 & '
    + 'watcher=$!; exec 3<&-; '
    + 'wait "$tart"; code=$?; kill "$watcher" 2>/dev/null; exit "$code"'
)

# sh -c EXEC_SCRIPT vm-operator BYTES TART exec ...: run `tart exec`, its stdin the first BYTES
# bytes of this session's stdin (-1: none), kept in a file unlinked once opened, so that the
# rest of the stdin, which the operator holds open and never writes, can be watched: when it
# ends (the local ssh was killed on the timeout, or the connection broke), the whole process
# group of this session (Tart and what it started) is killed. A "+" on stdout says that Tart is
# about to run: without it, what failed was ssh or the script (exit 255 and 127 are the guest
# command's own otherwise). Exits with Tart's exit code (the command's).
EXEC_SCRIPT = (
    _PATH_SETUP
    + 'n=$1; shift; '
    + _NEED_TART
    + 'exec 3<&0 </dev/null; '
    + 'if [ "$n" -ge 0 ]; then t=$(mktemp) || exit 1; head -c "$n" <&3 >"$t" || exit 1; '
    + 'exec 4<"$t"; rm -f "$t"; else exec 4</dev/null; fi; '
    + 'printf +; '
    + '"$@" <&4 3<&- 4<&- & tart=$!; exec 4<&-; '
    + '{ cat <&3 >/dev/null 2>&1; kill -KILL 0; } >/dev/null 2>&1 & watcher=$!; exec 3<&-; '
    + 'wait "$tart"; code=$?; kill "$watcher" 2>/dev/null; exit "$code"'
)
EXEC_STARTED = b"+"  # EXEC_SCRIPT's first output: Tart is being run

# sh -c EXEC_STREAM_SCRIPT vm-operator TOKEN TART exec ...: an interactive `tart exec`, its
# stdin the session's. Its process group (sshd made the session one) is written to a file
# named by TOKEN while it runs, so that EXEC_KILL_SCRIPT can kill it when the WebSocket ends:
# killing the local ssh ends the session, but Tart would learn of it only at its next read or
# write, and an idle command would run on. Exits with Tart's exit code (the command's).
EXEC_STREAM_SCRIPT = (
    _PATH_SETUP
    + f'f="$HOME/{EXEC_GROUP_DIR}/$1.pgid"; shift; '
    + _NEED_TART
    + 'mkdir -p "${f%/*}" && ps -o pgid= -p "$$" | tr -d " " >"$f"; '
    + '"$@"; code=$?; rm -f "$f"; exit "$code"'
)
# sh -c EXEC_KILL_SCRIPT vm-operator TOKEN: kill the process group EXEC_STREAM_SCRIPT wrote
# (nothing when it ended already: it removed its file).
EXEC_KILL_SCRIPT = (
    f'f="$HOME/{EXEC_GROUP_DIR}/$1.pgid"; '
    + 'if [ -s "$f" ]; then g=$(cat "$f"); rm -f "$f"; '
    + 'case $g in *[!0-9]*) ;; ?*) kill -s KILL -- "-$g" 2>/dev/null;; esac; fi; exit 0'
)

# sh -c DISK_SCRIPT vm-operator: the Tart home ($TART_HOME, else ~/.tart) on one line, then
# df -Pk's line for it (for its nearest existing parent when it does not exist yet).
DISK_SCRIPT = (
    'home=${TART_HOME:-$HOME/.tart}; d=$home; '
    'while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; '
    'printf "%s\\n" "$home"; df -Pk -- "$d" | tail -n 1'
)

# sh -c LAUNCH_SCRIPT vm-operator LOG TART run ... NAME: start `tart run` detached from this
# SSH session (nohup, every stdio redirected, background), its output to LOG; when it ends,
# its exit code goes to LOG.exit (written atomically). The logs of earlier runs move to
# LOG.1 ... LOG.<LOG_GENERATIONS> first. Prints the PID of the wrapper.
_RUN_WRAPPER = (
    '"$@"; code=$?; printf "%s\\n" "$code" >"$0.exit.tmp" && mv -f "$0.exit.tmp" "$0.exit"'
)
LAUNCH_SCRIPT = (
    _PATH_SETUP
    + 'log=$1; shift; '
    + _NEED_TART
    + "umask 077; cd || exit 1; "
    + 'mkdir -p "${log%/*}" || exit 1; '
    + f"i={LOG_GENERATIONS}; "
    + 'while [ "$i" -gt 1 ]; do j=$((i - 1)); '
    + 'if [ -f "$log.$j" ]; then mv -f "$log.$j" "$log.$i"; fi; i=$j; done; '
    + 'if [ -f "$log" ]; then mv -f "$log" "$log.1"; fi; '
    + 'rm -f "$log.exit" "$log.exit.tmp"; '
    + f"nohup /bin/sh -c {shlex.quote(_RUN_WRAPPER)} "
    + '"$log" "$@" </dev/null >"$log" 2>&1 & '
    + 'echo "$!"'
)

# sh -c WAIT_SCRIPT vm-operator LOG PID TICKS DELAY: once LOG.exit exists, its exit code then
# the log's tail (Tart's message, without another round trip); "gone" (then the tail) when the
# wrapper died without writing it; "running" after TICKS looks.
WAIT_SCRIPT = (
    'cd || exit 1; log=$1; pid=$2; ticks=$3; delay=$4; n=0; '
    'while [ ! -e "$log.exit" ]; do '
    'if ! kill -0 "$pid" 2>/dev/null; then '
    '[ -e "$log.exit" ] && break; echo gone; tail -c 8192 "$log" 2>/dev/null; exit 0; fi; '
    'if [ "$n" -ge "$ticks" ]; then echo running; exit 0; fi; '
    'n=$((n + 1)); sleep "$delay"; '
    'done; cat "$log.exit"; tail -c 8192 "$log" 2>/dev/null'
)

# sh -c LOG_SCRIPT vm-operator LOG BYTES: LOG's size on one line, then its last BYTES; exit 3
# when there is no LOG.
LOG_SCRIPT = f'cd || exit 1; [ -f "$1" ] || exit {LOG_MISSING}; wc -c <"$1"; tail -c "$2" "$1"'

# sh -c FORGET_SCRIPT vm-operator LOG: remove LOG, the earlier runs' LOG.1 ... and LOG.exit (the
# VM they were written for is gone).
FORGET_SCRIPT = (
    'cd || exit 1; rm -f -- "$1" "$1.exit" "$1.exit.tmp"; '
    f'i=1; while [ "$i" -le {LOG_GENERATIONS} ]; do rm -f -- "$1.$i"; i=$((i + 1)); done'
)


# sh -c PROBE_SCRIPT vm-operator IP PORT SECONDS: whether a TCP connection to IP:PORT succeeds
# from the host (where the guests' network is), within SECONDS: exit 0 if it does, else non-zero.
# bash's /dev/tcp makes the connection (macOS ships /bin/bash; Debian too), so nothing needs
# installing on the Mac; bash has no connect timeout, so a watchdog kills it after SECONDS.
# IP and PORT were checked (an IP address, a port number) before they got here.
_PROBE_CONNECT = 'exec 3<>"/dev/tcp/$1/$2"'
PROBE_SCRIPT = (
    f'bash -c {shlex.quote(_PROBE_CONNECT)} vm-operator "$1" "$2" </dev/null >/dev/null 2>&1 & '
    'p=$!; { sleep "$3"; kill -9 "$p"; } </dev/null >/dev/null 2>&1 & w=$!; '
    'wait "$p"; code=$?; kill "$w" 2>/dev/null; exit "$code"'
)


# --- command lines (pure) -----------------------------------------------------------------


def remote_command(words: Sequence[str]) -> str:
    """The one string the remote shell parses: every word quoted, so each stays one word."""
    return " ".join(shlex.quote(word) for word in words)


def _option_path(path: str) -> str:
    # ssh splits -o values on whitespace and expands %-tokens: quote, and escape '%'.
    path = path.replace("%", "%%")
    return f'"{path}"' if any(ch.isspace() for ch in path) else path


def ssh_options(settings: SshSettings, control_path: str | None = None) -> list[str]:
    """Never prompt, never wait on a dead host, trust only the pinned host key.

    With a ``control_path`` the call shares one connection (OpenSSH multiplexing): the first
    call that finds no live master there becomes it, in the background, and it stays up
    ``ControlPersist`` seconds after the last call; a call that finds a stale socket (the
    master was killed) removes it and becomes the master itself. Without one, the call makes
    its own connection, and so logs in."""
    if control_path is None:
        sharing = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    else:
        sharing = ["-o", "ControlMaster=auto", "-o", f"ControlPath={_option_path(control_path)}",
                   "-o", f"ControlPersist={settings.control_persist}"]
    options = [
        "-T",  # no TTY: no SIGHUP for what we leave running, no terminal escapes in output
        "-a",
        "-x",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={settings.connect_timeout}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        *sharing,
        "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
        "-p", str(settings.port),
    ]
    if settings.known_hosts:
        options += [
            "-o", f"UserKnownHostsFile={_option_path(settings.known_hosts)}",
            "-o", "GlobalKnownHostsFile=/dev/null",
        ]
    if settings.key:
        options += ["-i", settings.key.replace("%", "%%"), "-o", "IdentitiesOnly=yes"]
    return options


def ssh_argv(settings: SshSettings, remote_args: Sequence[str],
             control_path: str | None = None) -> list[str]:
    """``ssh OPTIONS -- DESTINATION 'word' 'word' ...`` as an argument list, the remote
    command as ONE string of quoted words."""
    return [settings.ssh, *ssh_options(settings, control_path), "--", settings.destination,
            remote_command(remote_args)]


def control_argv(settings: SshSettings, control_path: str, command: str) -> list[str]:
    """``ssh -O COMMAND`` (``check``, ``exit``) to the shared connection's master."""
    return [settings.ssh, *ssh_options(settings, control_path), "-O", command, "--",
            settings.destination]


def forward_argv(settings: SshSettings, ip: str, port: int, control_path: str | None) -> list[str]:
    """``ssh -W IP:PORT``: a tunnel's stream, connected on the host (through the shared
    connection when there is one: a channel, not a login)."""
    target = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return [settings.ssh, *ssh_options(settings, control_path), "-W", target, "--",
            settings.destination]


def script_words(script: str, *args: str) -> list[str]:
    """``/bin/sh -c SCRIPT vm-operator ARGS...``: fixed script text, values as parameters."""
    return ["/bin/sh", "-c", script, "vm-operator", *args]


def tart_argv(settings: SshSettings, args: Sequence[str],
              control_path: str | None = None) -> list[str]:
    return ssh_argv(settings, script_words(TART_SCRIPT, settings.tart, *args), control_path)


def remote_log_path(name: str) -> str:
    """The run log of ``name`` on the host, relative to the remote home."""
    encoded = quote(name, safe="")
    if len(encoded) > 200:  # stay well below NAME_MAX (255) with a stable, unique name
        encoded = f"{encoded[:150]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return f"{REMOTE_LOG_DIR}/{encoded}.log"


def parse_log_answer(text: str, lines: int | None = None) -> LogTail:
    """LOG_SCRIPT's answer (the size, then the log's last bytes) as a LogTail."""
    size_line, _, data = text.partition("\n")
    chunk = data.encode("utf-8", errors="replace")
    try:
        size = int(size_line.strip())
    except ValueError:
        raise TartError("reading the run log on the Tart host printed no size") from None
    return cut_tail(chunk, max(size, len(chunk)), lines)
