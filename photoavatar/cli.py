"""The `photoavatar` command: a thin edge that parses arguments and calls the stages.

Each command has one small `_run_*` function below; the work lives in the stage packages.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from photoavatar import __version__

log = logging.getLogger("photoavatar")


def _parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--roi wants four integers x,y,w,h (pixels of the photo), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"--roi width and height must be positive, got {text!r}")
    return x, y, w, h


def _run_avatarize(args: argparse.Namespace) -> int:
    from photoavatar.avatar.build import avatarize

    bundle = avatarize(args.photo, args.out, roi=args.roi, visemes=args.visemes, face_index=args.face,
                       size=args.size, force=args.force)
    print(f"avatar bundle written to {bundle.root}")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from photoavatar.avatar.inspect import write_preview

    out = write_preview(args.bundle, args.out)
    print(f"preview written to {out}")
    return 0


def _run_say(args: argparse.Namespace) -> int:
    from photoavatar.animate.render import render_talk

    if args.text is None and args.audio is None:
        print("error: say needs --text (what to say) or --audio (a recording to animate; --text is then its "
              "transcript)", file=sys.stderr)
        return 2
    result = render_talk(avatar=args.avatar, text=args.text, out=args.out, voice=args.voice, engine=args.engine,
                         timeline_path=args.timeline, plot_path=args.plot, audio=args.audio, language=args.language)
    print(f"talking video written to {result}")
    return 0


def _run_voice(args: argparse.Namespace) -> int:
    from photoavatar.speech.voices import clone_voice, list_voices

    if args.voice_command == "list":
        for voice in list_voices(args.engine):
            print(f"{voice.engine:11} {voice.voice_id:40} {voice.language:6} {voice.name}")
        return 0
    voice_id = clone_voice(args.name, args.samples, description=args.description)
    print(voice_id)
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from photoavatar.server.app import serve

    serve(host=args.host, port=args.port, avatars=args.avatars)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from photoavatar.avatar.demo import build_demo_avatar

    bundle, preview = build_demo_avatar(Path(args.avatars))
    print(f"demo avatar: {bundle.root}\npreview:     {preview}")
    if args.no_serve:
        return 0
    from photoavatar.server.app import serve

    serve(host=args.host, port=args.port, avatars=args.avatars)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photoavatar", description="A live, lip-synced talking avatar from one photo.")
    parser.add_argument("--version", action="version", version=f"photoavatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("avatarize", help="turn one portrait photo into an avatar bundle")
    p.add_argument("--photo", type=Path, required=True, help="portrait photo (JPEG, PNG, WebP...)")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--roi", type=_parse_roi, help="mouth region x,y,w,h in photo pixels (default: from landmarks)")
    p.add_argument("--visemes", default=None, help='comma-separated visemes (default: "Rest,AI,E,U,O,MBP,FV,L,WQ,R,CH,TH")')
    p.add_argument("--face", type=int, default=None, help="which face to use when the photo shows several (0-based)")
    p.add_argument("--size", type=int, default=512, help="working size: pixels on the long side of the crop (default 512)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(run=_run_avatarize)

    p = commands.add_parser("inspect", help="write a preview PNG of a bundle (visemes, mask, ROI, idle frames)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: BUNDLE/preview.png)")
    p.set_defaults(run=_run_inspect)

    p = commands.add_parser("say", help="render a talking video offline")
    p.add_argument("--avatar", type=Path, required=True, help="avatar bundle folder")
    p.add_argument("--text", default=None, help="what to say; with --audio, the recording's transcript (optional)")
    p.add_argument("--audio", type=Path, default=None,
                   help="animate this speech recording (WAV, MP3, Ogg/Opus, FLAC...) instead of synthesising --text")
    p.add_argument("--language", default="en-us", help="language of --audio's transcript (espeak-ng code, default en-us)")
    p.add_argument("--out", type=Path, required=True, help="MP4 to write (H.264 + AAC)")
    p.add_argument("--voice", default=None, help="voice id or a Piper .onnx path (see `photoavatar voice list`)")
    p.add_argument("--engine", choices=["piper", "elevenlabs"], default="piper")
    p.add_argument("--timeline", type=Path, default=None, help="also write the viseme/prosody timeline as JSON")
    p.add_argument("--plot", type=Path, default=None, help="also write a PNG plot of the timeline under the waveform")
    p.set_defaults(run=_run_say)

    p = commands.add_parser("voice", help="list or clone voices")
    voice = p.add_subparsers(dest="voice_command", required=True)
    v = voice.add_parser("list", help="list the voices available")
    v.add_argument("--engine", choices=["piper", "elevenlabs", "all"], default="all")
    v = voice.add_parser("clone", help="clone a voice with ElevenLabs from audio samples")
    v.add_argument("--name", required=True)
    v.add_argument("--description", default="")
    v.add_argument("samples", type=Path, nargs="+")
    p.set_defaults(run=_run_voice)

    for name, help_text in (("serve", "run the live server"), ("demo", "build the demo avatar and run the live server")):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--avatars", type=Path, default=Path("avatars"), help="folder of avatar bundles")
        if name == "demo":
            p.add_argument("--no-serve", action="store_true", help="build the demo avatar and stop")
        p.set_defaults(run=_run_serve if name == "serve" else _run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # user-facing errors carry their whole story in the message
        if args.verbose or not _is_user_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


def _is_user_error(error: Exception) -> bool:
    from photoavatar.speech.audio_input import AudioInputError
    from photoavatar.speech.engine import SpeechError
    from photoavatar.visemes import UnknownVisemeError

    known: tuple[type[Exception], ...] = (SpeechError, UnknownVisemeError, FileNotFoundError, FileExistsError,
                                          AudioInputError)
    try:
        from photoavatar.avatar.errors import AvatarError
        known += (AvatarError,)
    except ImportError:
        pass
    return isinstance(error, known)


if __name__ == "__main__":
    sys.exit(main())
