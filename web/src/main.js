// The page of the web service: join a fresh room with one of our agents and show, live, what
// each side said, the agent's state and what our agents publish about themselves (README, "What
// the agents publish"). Everything the tests look for is also recorded in `window.voiceAgents`.
import { createAudioAnalyser, ParticipantEvent, Room, RoomEvent, Track } from 'livekit-client';

const AGENT_JOIN_TIMEOUT_MS = 20000; // a registered worker joins in about a second
const AUDIBLE = 0.02; // volume (0-1) above which the agent's audio counts as sound

const $ = (id) => document.getElementById(id);
const state = {
  events: [], // {t: ms since page load, kind, ...}: what the browser saw, for tests and people
  firstAgentAudioMs: null,
  latenciesMs: [],
};
window.voiceAgents = state;
let room = null;
let agentTimer = null;
let stopMeter = null;

function note(kind, extra = {}) {
  state.events.push({ t: Math.round(performance.now()), kind, ...extra });
}

function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
  if (isError) note('error', { text });
}

// --- transcripts: a bubble per speaker's run of segments; a new stream of a segment replaces
// its text (user transcripts: each interim is a new stream; agent text: deltas in one stream)

function segment(id, mine) {
  let span = document.getElementById(`seg-${id}`);
  if (span) return span;
  const cls = mine ? 'user' : 'agent';
  let li = $('transcript').lastElementChild;
  if (!li || !li.classList.contains(cls)) {
    li = document.createElement('li');
    li.className = cls;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = mine ? 'You' : 'Agent';
    li.append(who);
    $('transcript').append(li);
  }
  span = document.createElement('span');
  span.id = `seg-${id}`;
  li.append(span, ' ');
  return span;
}

async function onTranscription(reader, participantInfo) {
  const attrs = reader.info.attributes ?? {};
  const mine = participantInfo.identity === room?.localParticipant.identity;
  const span = segment(attrs['lk.segment_id'] ?? reader.info.id, mine);
  span.className = attrs['lk.transcription_final'] === 'true' ? '' : 'interim';
  let text = '';
  try {
    for await (const chunk of reader) {
      text += chunk;
      span.textContent = text;
    }
  } catch {
    return; // the room closed mid-stream: keep what arrived
  }
  span.scrollIntoView({ block: 'nearest' });
}

// --- what the agent publishes ----------------------------------------------------------------

let cutIns = 0;
let lastUserStop = null;

function onAgentAttributes(attrs) {
  const agentState = attrs['lk.agent.state'];
  if (agentState && agentState !== $('agent-state').textContent) {
    $('agent-state').textContent = agentState;
    note('agent_state', { state: agentState });
    if (agentState === 'speaking' && lastUserStop !== null) {
      const ms = Math.round(performance.now() - lastUserStop);
      lastUserStop = null;
      state.latenciesMs.push(ms);
      $('latencies').textContent = state.latenciesMs.map((v) => `${(v / 1000).toFixed(2)} s`)
        .join(', ');
    }
  }
  if ('interrupter.sentences' in attrs) {
    $('budget').hidden = false;
    $('sentences').textContent = attrs['interrupter.sentences'];
    $('words').textContent = attrs['interrupter.words'] ?? '0';
    $('max-sentences').textContent = attrs['interrupter.max_sentences'] || '–';
    $('max-words').textContent = attrs['interrupter.max_words'] || '–';
    note('budget', { sentences: Number(attrs['interrupter.sentences']),
      words: Number(attrs['interrupter.words']) });
    const n = Number(attrs['interrupter.cut_ins'] ?? 0);
    if (n > cutIns) {
      cutIns = n;
      $('cut-ins').textContent = String(n);
      const li = document.createElement('li');
      li.className = 'cut-in';
      li.textContent = `✂ the agent cut in here (${attrs['interrupter.cut_in_by'] || 'limit'}`
        + ` limit reached)`;
      $('transcript').append(li);
      note('cut_in', { by: attrs['interrupter.cut_in_by'] });
    }
  }
  if ('uninterruptable.suppressed' in attrs) {
    $('suppressed-box').hidden = false;
    $('suppressed').textContent = attrs['uninterruptable.suppressed'];
    $('user-audio').textContent = attrs['uninterruptable.user_audio'] === 'keep'
      ? 'kept and answered afterwards' : 'not heard: the agent cannot be interrupted';
  }
}

// --- the agent's audio: play it, and see when it carries sound -------------------------------

function onTrack(track, _publication, participant) {
  if (track.kind !== Track.Kind.Audio || !participant.isAgent) return;
  document.body.append(track.attach());
  const { calculateVolume, cleanup } = createAudioAnalyser(track, { cloneTrack: true });
  let on = false;
  const timer = setInterval(() => {
    const loud = calculateVolume() > AUDIBLE;
    if (loud === on) return;
    on = loud;
    $('agent-audio').className = on ? 'on' : '';
    note(on ? 'agent_audio_start' : 'agent_audio_end');
    if (on && state.firstAgentAudioMs === null) {
      state.firstAgentAudioMs = Math.round(performance.now());
    }
  }, 20);
  stopMeter = () => { clearInterval(timer); cleanup(); };
}

// --- join and leave --------------------------------------------------------------------------

async function join() {
  const agent = $('agent').value;
  $('join').disabled = true;
  $('transcript').replaceChildren();
  let details;
  try {
    say('Asking the web server for a room…');
    const resp = await fetch(`/api/connection-details?agent=${encodeURIComponent(agent)}`);
    details = await resp.json();
    if (!resp.ok) throw new Error(details.error ?? `HTTP ${resp.status}`);
  } catch (e) {
    say(`The web server did not give us a room: ${e.message}`, true);
    $('join').disabled = false;
    return;
  }
  room = new Room();
  room.registerTextStreamHandler('lk.transcription', onTranscription);
  room.on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => {
    if (p.isAgent) onAgentAttributes(p.attributes);
  });
  room.on(RoomEvent.ParticipantConnected, (p) => {
    if (!p.isAgent) return;
    clearTimeout(agentTimer);
    note('agent_joined', { identity: p.identity });
    say(`${agent} joined: talk to it.`);
    onAgentAttributes(p.attributes);
  });
  room.on(RoomEvent.ParticipantDisconnected, (p) => {
    if (p.isAgent && room) say(`${agent} left the room.`, true);
  });
  room.on(RoomEvent.TrackSubscribed, onTrack);
  room.on(RoomEvent.Disconnected, () => leave(false));
  room.localParticipant.on(ParticipantEvent.IsSpeakingChanged, (speaking) => {
    lastUserStop = speaking ? null : performance.now();
  });
  try {
    say(`Connecting to LiveKit at ${details.serverUrl}…`);
    $('connection').textContent = 'connecting';
    await room.connect(details.serverUrl, details.participantToken);
  } catch (e) {
    say(`Cannot reach the LiveKit server at ${details.serverUrl}: ${e.message}`, true);
    await leave(false);
    return;
  }
  note('connected', { room: details.roomName });
  $('connection').textContent = `in room ${details.roomName}`;
  $('leave').disabled = false;
  try {
    await room.localParticipant.setMicrophoneEnabled(true);
  } catch (e) {
    const why = { NotAllowedError: 'access to it was denied. Allow it for this page',
      NotFoundError: 'none was found. Connect one' }[e.name] ?? `${e.message}. Check it`;
    say(`No microphone: ${why} and join again.`, true);
    await leave(false);
    return;
  }
  if (![...room.remoteParticipants.values()].some((p) => p.isAgent)) {
    say(`Waiting for ${agent} to join…`);
    agentTimer = setTimeout(() => say(`${agent} did not join within `
      + `${AGENT_JOIN_TIMEOUT_MS / 1000} s: is its worker running and registered with this `
      + 'LiveKit server?', true), AGENT_JOIN_TIMEOUT_MS);
  }
}

async function leave(byUser = true) {
  clearTimeout(agentTimer);
  stopMeter?.();
  stopMeter = null;
  const r = room;
  room = null;
  if (r) await r.disconnect();
  document.querySelectorAll('body > audio').forEach((el) => el.remove());
  $('connection').textContent = 'not connected';
  $('agent-state').textContent = '–';
  $('agent-audio').className = '';
  $('join').disabled = false;
  $('leave').disabled = true;
  if (byUser) say('Left the room.');
}

async function loadAgents() {
  try {
    const resp = await fetch('/api/agents');
    const { agents } = await resp.json();
    $('agent').replaceChildren(...agents.map((name) => new Option(name, name)));
    const wanted = new URLSearchParams(location.search).get('agent');
    if (agents.includes(wanted)) $('agent').value = wanted;
  } catch (e) {
    say(`The web server is not answering: ${e.message}`, true);
  }
}

$('join').addEventListener('click', join);
$('leave').addEventListener('click', () => leave(true));
window.addEventListener('unhandledrejection', (ev) => say(`Unexpected error: ${ev.reason}`, true));
loadAgents();
