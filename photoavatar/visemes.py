"""The viseme vocabulary shared by every stage: mouth shapes, one per group of sounds."""

VISEMES: tuple[str, ...] = ("Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH")
REST = "Rest"

# Visemes whose lips must fully reach their shape (bilabial closure, lip-teeth contact).
CLOSURES: frozenset[str] = frozenset({"MBP", "FV"})


class UnknownVisemeError(ValueError):
    pass


def parse_viseme_list(text: str) -> tuple[str, ...]:
    """Parse "Rest,AI,E" into a tuple, rejecting unknown or repeated names with the valid list."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in VISEMES]
    if unknown:
        raise UnknownVisemeError(
            f"unknown viseme(s): {', '.join(unknown)}; valid names are: {','.join(VISEMES)}"
        )
    if len(set(names)) != len(names):
        raise UnknownVisemeError(f"viseme list repeats a name: {text!r}")
    if REST not in names:
        raise UnknownVisemeError("the viseme list must contain Rest (the neutral mouth)")
    return names
