"""The one exception type of the avatar stage: its message tells the user what is wrong and what to do."""


class AvatarError(Exception):
    """A problem with the user's photo, options or bundle; the CLI prints the message without a traceback."""
