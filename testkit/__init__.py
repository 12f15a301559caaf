"""The test kit: what the suites (tests/) and the benchmarks (bench/) run on. One job a module:

  processes       spawn children in a process group that dies with us, terminate, log tails,
                  free ports, a tolerant HTTP GET
  polling         `HarnessError` and the one wait loop (`wait_until` blocking, `wait_for` async)
  livekit_server  `LiveKitServer`: livekit-server --dev on 127.0.0.1, free ports, restartable
  fakes_runner    `Fakes`: `python -m testkit.fakes`, a process per provider, steered by Control
  worker          `Worker`: an agent worker run as the images run it; worker_env, running_worker
  participant     `Participant`: a user in a room over real WebRTC; `Spoken`, `AgentJoin`
  webrtc_audio    the participant's `Microphone` and the agent's `AudioMonitor`
  audio           the level meter (`rms_dbfs`), `Segment` and turns, `Playlist` (every mic's queue)
  utterance       `Utterance`: PCM with sentence and word timings, its STT script, PCM helpers
  speech          espeak-ng synthesis (cached) into utterances, word timings estimated
  session_io      audio I/O of an in-process AgentSession: `SpeechInput`, `PlayoutRecorder`
  inproc          in-process sessions (`SessionFactory`, `Harness`) on the fakes
  scenarios       natural monologues (sentences, pauses, provider timings drawn with a seed)
  golden_rules    golden cases of the interrupter's policy
  recipe_buffer   the recipe's transcript buffer, shown to fail the policy's tests
  first_call      `python -m testkit.first_call`: what a job process imports on its first call
  reporting       figures for the run log and summary; speech that fails with the setup hint
  fakes/          the provider fakes (OpenAI, Deepgram) and the pure recogniser behind the STT

Nothing here imports pytest at module level: bench/ uses it outside a test run.
"""
