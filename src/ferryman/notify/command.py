"""``command``: run a program per failure digest, the failures as JSON on its standard input."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import asdict
from typing import Literal

from pydantic import Field

from ferryman.notify.base import Failure, Notifier, NotifierConfig
from ferryman.units import Duration


class CommandNotifierConfig(NotifierConfig):
    """Run a command: argv, no shell. Environment: FERRYMAN_EVENT (failed/recovered), FERRYMAN_FLOW,
    FERRYMAN_COUNT; standard input: a JSON list of failures."""

    type: Literal["command"]
    command: list[str] = Field(min_length=1, description="The argv to run.")
    timeout: Duration = Field(60.0, description="Kill the command after this long.")


class CommandNotifier(Notifier[CommandNotifierConfig]):
    Config = CommandNotifierConfig

    def _run(self, event: str, flow: str, payload: list[dict[str, object]]) -> None:
        env = {"FERRYMAN_EVENT": event, "FERRYMAN_FLOW": flow, "FERRYMAN_COUNT": str(len(payload))}
        try:
            done = subprocess.run(self.config.command, input=json.dumps(payload), text=True,
                                  env={**os.environ, **env}, capture_output=True,
                                  timeout=self.config.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logging.getLogger("ferryman.notify").error("notifier %s: %s", self.name, exc)
            return
        if done.returncode != 0:
            logging.getLogger("ferryman.notify").error(
                "notifier %s: %s exited with %d: %s", self.name, self.config.command[0],
                done.returncode, done.stderr.strip()[-300:])

    def failed(self, failures: list[Failure]) -> None:
        self._run("failed", failures[0].flow, [asdict(f) for f in failures])

    def recovered(self, flow: str) -> None:
        self._run("recovered", flow, [])
