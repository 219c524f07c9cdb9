"""Model lifecycle: which versions serve, loading, switching and unloading them."""

from service.lifecycle.manager import ModelManager
from service.lifecycle.served import ServedVersion, State, Status

__all__ = ["ModelManager", "ServedVersion", "State", "Status"]
