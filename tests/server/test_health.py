"""/health and /metrics (issue 11, "Also expected"): an operator can see the load."""

from __future__ import annotations

import asyncio

from test_app import open_session, server

from photoavatar.server.health import parse

WARM_UP_WAIT_S = 120  # the voice's first load and its warm-up runs


async def test_health_answers_while_the_loop_runs(tmp_path):
    async with server(tmp_path) as http:
        reply = await http.get("/health")
        assert reply.status_code == 200 and reply.json()["status"] == "ok" and reply.json()["uptime_s"] >= 0


async def test_metrics_show_sessions_queue_responses_and_the_process(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        for _ in range(3):
            body = {"session_id": session["session_id"], "text": "Hello there.", "barge_in": False}
            assert (await http.post("/speak", json=body, headers=auth)).status_code == 202
        assert (await http.post("/session-live", json={"avatar_id": "nobody"})).status_code == 404
        reply = await http.get("/metrics")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        values = parse(reply.text)
        assert values['photoavatar_sessions{state="unconnected"}'] == 1
        assert values['photoavatar_sessions{state="connected"}'] == 0
        assert values["photoavatar_utterances_queued"] >= 2  # one may already be synthesising
        assert values['photoavatar_http_responses_total{class="4xx"}'] == 1
        assert values['photoavatar_http_responses_total{class="2xx"}'] >= 4
        assert values["photoavatar_process_resident_bytes"] > 50e6
        assert values["photoavatar_process_open_fds"] > 3 and values["photoavatar_process_threads"] >= 2
        assert values['photoavatar_avatar_jobs{state="running"}'] == 0
        for name in ("photoavatar_synthesis_in_flight", "photoavatar_synthesis_streams",
                     "photoavatar_synthesis_held_back", "photoavatar_synthesis_audio_seconds_total",
                     "photoavatar_synthesis_cpu_seconds_total", "photoavatar_underrun_frames_total",
                     "photoavatar_late_frames_total", "photoavatar_event_loop_lag_seconds"):
            assert values[name] >= 0
        assert (await http.delete(f"/sessions/{session['session_id']}", headers=auth)).status_code == 204
        values = parse((await http.get("/metrics")).text)
        assert values["photoavatar_sessions_closed_total"] == 1 and values['photoavatar_sessions{state="unconnected"}'] == 0
        assert "# TYPE photoavatar_http_responses_total counter" in reply.text


async def test_metrics_count_the_audio_synthesis_made_and_the_cpu_it_took(tmp_path):
    async with server(tmp_path) as http:
        deadline = asyncio.get_running_loop().time() + WARM_UP_WAIT_S
        while (values := parse((await http.get("/metrics")).text))["photoavatar_synthesis_audio_seconds_total"] == 0:
            assert asyncio.get_running_loop().time() < deadline, "the start-up warm-up made no audio"
            await asyncio.sleep(0.1)
        assert values["photoavatar_synthesis_cpu_seconds_total"] > 0  # the model run that made it
