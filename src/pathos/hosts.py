"""Which shell profile to source on each remote host (pathos 0.3.5's host registry).

A command run over ssh does not read the login files that set up ``PATH`` (conda,
virtual environments, modules). :func:`pathos.core.serve` and ``pathos_connect``
source the profile registered for the host first:

    >>> from pathos import hosts
    >>> hosts.register("cluster.example.org", ".profile")
    >>> hosts.get_profile("cluster.example.org")
    '.profile'
    >>> hosts.get_profile("elsewhere")          # not registered: the default
    '.bash_profile'
"""

from __future__ import annotations

from typing import Optional

__all__ = ["default_profile", "get_profile", "get_profiles", "register", "register_profiles"]

default_profile = ".bash_profile"
_profiles: dict[str, str] = {}  # host -> profile path (relative to the remote home)


def get_profile(rhost: str, assume: bool = True) -> Optional[str]:
    """The profile registered for ``rhost``; else ``default_profile``, or None if not ``assume``."""
    if rhost in _profiles:
        return _profiles[rhost]
    return default_profile if assume else None


def get_profiles() -> dict[str, str]:
    """The registry itself: ``{host: profile}``."""
    return _profiles


def register_profiles(profiles: dict[str, str]) -> None:
    """Register several hosts at once from a ``{host: profile}`` dict."""
    for host, profile in dict(profiles).items():
        register(host, profile)


def register(rhost: str, profile: Optional[str] = None) -> None:
    """Register ``rhost`` with ``profile`` (default ``default_profile``)."""
    if not isinstance(rhost, str) or not rhost:
        raise TypeError(f"rhost must be a host name (a non-empty str), got {rhost!r}")
    if profile is not None and not isinstance(profile, str):
        raise TypeError(f"profile must be a path (a str) or None, got {profile!r}")
    _profiles[rhost] = default_profile if profile is None else profile
