// The emulated rp2 board: MicroPython's rp2 port (the UF2 `memctl build-mpy --target rp2` makes) on rp2040js,
// instruction by instruction, with the reference board's chips on the other end of its SPI bus and GPIO.
//
// What this harness adds to rp2040js, without editing it (each gap is in docs/hardware.md):
// - USB host: an OUT-endpoint read is held until host bytes are queued (rp2040js answers at once with an empty
//   packet and the CPU spins), and start-of-frame interrupts come every simulated millisecond.
// - PIO: state machines step from the CPU's cycle count (clock divider and delays honoured), not from a wall-clock
//   timer; the pulse gate's edges are timed in simulated nanoseconds.
// - Flash: the bootrom's erase / program / XIP functions are answered here (rp2040js ignores flash writes) and
//   written through to a host file, so the filesystem outlives a reset and a relaunch.
// - SPI: every byte goes to the chip models (memctl_emulator/chips) over the analog bus; the CPU does not advance
//   while an answer is outstanding, so simulated time is deterministic. Bytes and pin edges queue and travel as one
//   bus message when the firmware reads a received byte (MISO is needed then) or the queue is long.
//
// Pipes (memctl_emulator/rp2.py is the other end): fd 0 host bytes in (USB CDC OUT; non-blocking), fd 1 out
// (uart_mux frames: HOST = USB CDC IN bytes, AFE = a bus request; anything outside frames is console text),
// --reply-fd: bus replies in (blocking).
import fs from 'node:fs';
import { GPIOPinState, Simulator, USBCDC } from 'rp2040js';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const PINS = (args.pins || '').split(',').filter(Boolean).map(Number); // GPIOs wired to the chips
const GATE = Number(args.gate ?? 27);
const REPLY_FD = Number(args['reply-fd'] ?? 3);
const DEBUG = !!process.env.RP2_DEBUG; // a line of counters now and then (flushes, gates, instructions)
const FLASH_SIZE = 2 * 1024 * 1024; // the Pico's W25Q16
const RESET_EXIT = 75; // machine.reset(): the launcher boots the board again
const SYNC = 0xa5;
const CHAN_HOST = 0;
const CHAN_AFE = 1;
// afe_bus ops
const OP_PIN = 15;
const OP_XFER = 17;
const OP_STROBE = 18;
const OP_WAIT = 10;
const TX_LIMIT = 3000; // queued bus bytes that make the harness send without waiting for a read

// ---- output to the launcher --------------------------------------------------------------------------------
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}
function frame(chan, payload) {
  for (let off = 0; off === 0 || off < payload.length; off += 8192) {
    const part = payload.subarray(off, off + 8192);
    const head = Buffer.from([SYNC, chan, part.length & 0xff, part.length >> 8]);
    writeAll(1, Buffer.concat([head, part]));
  }
}
function log(text) {
  writeAll(1, Buffer.from(`[rp2040js] ${text}\n`));
}

// ---- the MCU -----------------------------------------------------------------------------------------------
const sim = new Simulator();
const mcu = sim.rp2040;
const clock = sim.clock;
// rp2040js names every register it does not model (the boot touches many that change nothing here): left out.
const quiet = (m) => String(m).startsWith('Unimplemented peripheral');
mcu.logger = {
  debug() {},
  info() {},
  warn: (c, m) => quiet(m) || log(`${c}: ${m}`),
  error: (c, m) => log(`error ${c}: ${m}`),
};
mcu.loadBootrom(new Uint32Array(new Uint8Array(fs.readFileSync(args.bootrom)).buffer));

// Flash: the persisted image first, then the UF2's blocks over it (MicroPython itself), as a drag-and-drop flash
// leaves the filesystem region alone.
const flashFile = args.flash;
if (fs.existsSync(flashFile)) {
  const kept = fs.readFileSync(flashFile);
  mcu.flash.set(kept.subarray(0, FLASH_SIZE));
}
const uf2 = fs.readFileSync(args.uf2);
for (let off = 0; off + 512 <= uf2.length; off += 512) {
  const b = uf2.subarray(off, off + 512);
  if (b.readUInt32LE(0) !== 0x0a324655 || b.readUInt32LE(4) !== 0x9e5d5157) continue;
  const addr = b.readUInt32LE(12);
  const size = b.readUInt32LE(16);
  if (addr >= 0x10000000 && addr + size <= 0x10000000 + FLASH_SIZE) mcu.flash.set(b.subarray(32, 32 + size), addr - 0x10000000);
}
const flashFd = fs.openSync(flashFile, fs.existsSync(flashFile) ? 'r+' : 'w+');
fs.writeSync(flashFd, mcu.flash, 0, FLASH_SIZE, 0);

// The bootrom's function table: flash functions answered here instead of through the unmodelled QSPI controller.
function romFunction(code) {
  const rom = new Uint8Array(mcu.bootrom.buffer);
  let p = rom[0x14] | (rom[0x15] << 8);
  for (;;) {
    const c = rom[p] | (rom[p + 1] << 8);
    if (!c) return -1;
    if (c === code) return (rom[p + 2] | (rom[p + 3] << 8)) & ~1;
    p += 4;
  }
}
const code = (a, b) => a.charCodeAt(0) | (b.charCodeAt(0) << 8);
const romHooks = new Map();
function persist(off, n) {
  fs.writeSync(flashFd, mcu.flash, off, n, off);
}
romHooks.set(romFunction(code('R', 'E')), (r) => {
  // flash_range_erase(addr, count, block_size, block_cmd)
  const off = r[0] >>> 0;
  const n = r[1] >>> 0;
  if (off + n <= FLASH_SIZE) {
    mcu.flash.fill(0xff, off, off + n);
    persist(off, n);
  }
});
romHooks.set(romFunction(code('R', 'P')), (r) => {
  // flash_range_program(addr, data, count): NOR flash only clears bits
  const off = r[0] >>> 0;
  const n = r[2] >>> 0;
  if (off + n <= FLASH_SIZE) {
    for (let i = 0; i < n; i++) mcu.flash[off + i] &= mcu.readUint8(r[1] + i);
    persist(off, n);
  }
});
for (const c of ['IF', 'EX', 'FC', 'CX']) romHooks.set(romFunction(code(c[0], c[1])), () => {});
romHooks.delete(-1);
const hookAt = new Set(romHooks.keys());

// ---- USB CDC: the host link --------------------------------------------------------------------------------
const cdc = new USBCDC(mcu.usbCtrl);
let heldRead = null; // an OUT-endpoint read the device armed while the host had nothing to send
const usb = mcu.usbCtrl;
usb.onEndpointRead = (endpoint, size) => {
  if (endpoint !== cdc.outEndpoint) return;
  if (cdc.txFIFO.itemCount) completeRead(endpoint, size);
  else heldRead = { endpoint, size };
};
function completeRead(endpoint, size) {
  const n = Math.min(size, cdc.txFIFO.itemCount);
  const buf = new Uint8Array(n);
  for (let i = 0; i < n; i++) buf[i] = cdc.txFIFO.pull();
  usb.endpointReadDone(endpoint, buf);
}
cdc.onSerialData = (data) => {
  flush(); // what the firmware did before it answered reaches the array before the host hears the answer
  frame(CHAN_HOST, Buffer.from(data));
};
cdc.onDeviceConnected = () => { if (DEBUG) log(`usb connected at ${clock.nanos}`); };
const INTR_DEV_SOF = 1 << 17;
const sof = clock.createAlarm(() => {
  usb.sofFrameNumber = (usb.sofFrameNumber + 1) & 0x7ff;
  usb.intRaw |= INTR_DEV_SOF;
  usb.checkInterrupts();
  sof.schedule(1e6);
});
sof.schedule(1e6);
const SOF_RD = 0x48;
const usbRead = usb.readUint32.bind(usb);
usb.readUint32 = (offset) => {
  if (offset === SOF_RD && usb.intRaw & INTR_DEV_SOF) {
    usb.intRaw &= ~INTR_DEV_SOF; // reading the frame number clears the interrupt, as on the chip
    usb.checkInterrupts();
  }
  return usbRead(offset);
};
const hostIn = Buffer.alloc(4096);
function pollHost() {
  // The device's OUT FIFO holds what it has not read yet; bytes beyond its room stay in the pipe (a USB host
  // likewise holds them until the device takes them).
  const room = cdc.txFIFO.size - cdc.txFIFO.itemCount;
  if (room <= 0) return;
  let n = 0;
  try {
    n = fs.readSync(0, hostIn, 0, Math.min(hostIn.length, room));
  } catch (e) {
    if (e.code === 'EAGAIN') return;
    throw e;
  }
  if (n === 0) process.exit(0); // the launcher closed the line: power off
  for (let i = 0; i < n; i++) cdc.sendSerialByte(hostIn[i]);
  if (heldRead) {
    const { endpoint, size } = heldRead;
    heldRead = null;
    completeRead(endpoint, size);
  }
}

// ---- the analog bus: SPI bytes and pin edges to the chip models ----------------------------------------------
const tx = Buffer.alloc(TX_LIMIT + 64);
let txLen = 2;
let xferAt = -1; // where the open OP_XFER's length field is (-1: none open)
const miso = []; // resolved MISO bytes by token
let nextToken = 0; // token of the next byte clocked out
let resolvedUpTo = 0; // tokens below this have their byte
let pendingFrom = 0; // the first token of the bytes queued in tx
let afeNs = 0; // simulated time the front end has been told about
const replyHead = Buffer.alloc(5);

function queue(op, argBytes) {
  if (txLen + 1 + argBytes.length > TX_LIMIT) flush();
  tx[txLen] = op;
  argBytes.copy(tx, txLen + 1);
  txLen += 1 + argBytes.length;
  xferAt = -1;
}
function catchUp(nowNs) {
  // Time the CPU spent since the last bus event passes on the array too (relaxation, recovery between pulses).
  const us = Math.floor((nowNs - afeNs) / 1000);
  if (us > 0) {
    const a = Buffer.alloc(4);
    a.writeUInt32LE(us);
    queue(OP_WAIT, a);
    afeNs += us * 1000;
  }
}
function readExact(fd, buf, n) {
  let got = 0;
  while (got < n) {
    let k;
    try {
      k = fs.readSync(fd, buf, got, n - got);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (k === 0) process.exit(0);
    got += k;
  }
}
function flush() {
  if (txLen <= 2) return;
  flushes++;
  const f0 = process.hrtime.bigint();
  tx.writeUInt16LE(txLen - 2, 0);
  frame(CHAN_AFE, tx.subarray(0, txLen));
  txLen = 2;
  xferAt = -1;
  readExact(REPLY_FD, replyHead, 5);
  const length = replyHead.readUInt32LE(0);
  const body = Buffer.alloc(length);
  readExact(REPLY_FD, body, length);
  if (replyHead[4]) {
    // A driver broke a chip's rules: a firmware bug, never silence. Power the board off, saying why.
    log(`chip protocol error: ${body.toString()}`);
    process.exit(3);
  }
  flushNs += process.hrtime.bigint() - f0;
  for (let i = 0; i < length; i++) miso[pendingFrom + i] = body[i];
  resolvedUpTo = pendingFrom + length;
  pendingFrom = resolvedUpTo;
  if (miso.length > 65536 && resolvedUpTo === nextToken) {
    miso.length = 0; // tokens restart when nothing is outstanding
    nextToken = resolvedUpTo = pendingFrom = 0;
  }
}

for (const p of PINS) {
  mcu.gpio[p].addListener((state) => {
    if (state !== GPIOPinState.Low && state !== GPIOPinState.High) return;
    const a = Buffer.alloc(3);
    a.writeUInt16LE(p, 0);
    a[2] = state === GPIOPinState.High ? 1 : 0;
    queue(OP_PIN, a);
  });
}

const spi = mcu.spi[0];
spi.onTransmit = (value) => {
  if (xferAt < 0 || txLen + 1 > TX_LIMIT) {
    if (txLen + 4 > TX_LIMIT) flush();
    tx[txLen] = OP_XFER;
    xferAt = txLen + 1;
    tx.writeUInt16LE(0, xferAt);
    txLen += 3;
  }
  tx[txLen++] = value & 0xff;
  tx.writeUInt16LE(tx.readUInt16LE(xferAt) + 1, xferAt);
  const token = nextToken++;
  // The byte takes its bit time on the wire; its MISO byte is looked up when the firmware reads it.
  const bitNs = 1e9 / (spi.clockFrequency || 1e6);
  const done = clock.createAlarm(() => spi.completeTransmit(token));
  done.schedule(Math.max(1, Math.round(8 * bitNs)));
};
const SSPDR = 0x008;
const spiRead = spi.readUint32.bind(spi);
spi.readUint32 = (offset) => {
  if (offset !== SSPDR || spi.rxFIFO.empty) return spiRead(offset);
  const token = spiRead(offset);
  if (token >= resolvedUpTo) flush();
  return miso[token];
};

// ---- the pulse gate ----------------------------------------------------------------------------------------
let pioNowNs = -1; // while a state machine steps: the simulated time of its instruction
let gateRise = -1;
let gates = 0;
let flushes = 0;
let flushNs = 0n;
let instrs = 0;
let sleeps = 0;
let slept = 0;
mcu.gpio[GATE].addListener((state) => {
  const now = pioNowNs >= 0 ? pioNowNs : clock.nanos;
  if (state === GPIOPinState.High) {
    gateRise = now;
  } else if (state === GPIOPinState.Low && gateRise >= 0) {
    const width = Math.round(now - gateRise);
    gateRise = -1;
    gates++;
    catchUp(now - width);
    const a = Buffer.alloc(4);
    a.writeUInt32LE(width);
    queue(OP_STROBE, a);
    afeNs = now;
  }
});

// ---- PIO stepped from the CPU's cycles -----------------------------------------------------------------------
const CYCLE_NS = 1e9 / 125e6;
const machines = [];
for (const pio of mcu.pio) {
  pio.run = () => {}; // no wall-clock loop: stepped below
  for (const sm of pio.machines) machines.push({ pio, sm, nextNs: -1 });
}
const WAIT_RX = 2; // rp2040js WaitType: a push with the RX FIFO full
const WAIT_TX = 3; // a pull with the TX FIFO empty
const WAIT_OUT = 5;
function stepPIO(untilNs) {
  for (const m of machines) {
    const { sm, pio } = m;
    if (!sm.enabled) {
      m.nextNs = -1;
      continue;
    }
    if (m.nextNs < 0) m.nextNs = untilNs;
    const period = CYCLE_NS * (sm.clockDivInt ? sm.clockDivInt + sm.clockDivFrac / 256 : 65536);
    while (m.nextNs < untilNs) {
      // Shortcuts that change nothing but the host's work: a machine stalled on a FIFO only the CPU can serve
      // waits out the batch; a `jmp x--` to itself (a counted delay) runs its iterations at once.
      if (sm.waiting) {
        const t = sm.waitType;
        if ((t === WAIT_TX || t === WAIT_OUT) && sm.txFIFO.empty) {
          m.nextNs = untilNs;
          break;
        }
        if (t === WAIT_RX && sm.rxFIFO.full) {
          m.nextNs = untilNs;
          break;
        }
      } else if (!sm.execValid) {
        const op = pio.instructions[sm.pc];
        if (op >> 13 === 0 && ((op >> 5) & 7) === 2 && (op & 0x1f) === sm.pc && ((op >> 8) & 0x1f) === 0 && sm.x) {
          const k = Math.min(sm.x, Math.ceil((untilNs - m.nextNs) / period));
          sm.x -= k;
          sm.cycles += k;
          m.nextNs += k * period;
          continue;
        }
      }
      pioNowNs = m.nextNs;
      const before = sm.cycles;
      sm.step();
      pio.checkChangedPins();
      const used = sm.cycles - before;
      m.nextNs += (used > 0 ? used : 1) * period;
    }
  }
  pioNowNs = -1;
}
const pioActive = () => mcu.pio[0].stopped === false || mcu.pio[1].stopped === false;
// A state machine at work: enabled and not stalled on an empty TX FIFO (what only the CPU can end).
const pioBusy = () =>
  pioActive() && machines.some(({ sm }) => sm.enabled && !(sm.waiting && sm.txFIFO.empty && (sm.waitType === WAIT_TX || sm.waitType === WAIT_OUT)));
// The state machines catch up with the CPU whenever it touches a PIO register (a FIFO, a status, a restart), and
// while it sleeps: between those moments nothing the CPU does can see them, and the gate's edges carry their own
// times. Stepping them after every CPU instruction would cost the host most of its time.
for (const pio of mcu.pio) {
  const read = pio.readUint32.bind(pio);
  const write = pio.writeUint32.bind(pio);
  pio.readUint32 = (offset) => {
    if (pioActive()) stepPIO(clock.nanos);
    return read(offset);
  };
  pio.writeUint32 = (offset, value) => {
    if (pioActive()) stepPIO(clock.nanos);
    write(offset, value);
  };
}

// ---- PWM: the ADC clock -----------------------------------------------------------------------------------------
// rp2040js runs a PWM slice with an alarm at every edge: the ADS131M08s' 8.192 MHz CLKIN (GPIO 28, slice 6 A)
// would cost the host an alarm every 61 ns of simulated time. Nothing here watches that pin (the chip models
// convert in the gate's window), so its edges are not run; the slice's registers still read as the firmware set them.
for (const pin of (args['quiet-pwm'] || '').split(',').filter(Boolean).map(Number)) {
  const slice = mcu.pwm.channels[pin < 16 ? pin >> 1 : (pin - 16) >> 1];
  for (const alarm of [slice.alarmA, slice.alarmB, slice.alarmBottom]) alarm.enable = false;
}

// ---- reset -------------------------------------------------------------------------------------------------
mcu.peripherals[0x40058].onWatchdogTrigger = () => {
  flush();
  fs.fsyncSync(flashFd);
  process.exit(RESET_EXIT);
};

// ---- run ---------------------------------------------------------------------------------------------------
// Busy, the board runs as fast as the host allows (simulated time is exact whatever the wall clock does); idle (the
// core asleep awaiting an interrupt, no pulse under way), its simulated time goes no faster than the wall clock, so
// an idle board costs the host little and the firmware's timeouts last what they say.
mcu.core.PC = 0x10000000;
const core = mcu.core;
const nap = new Int32Array(new SharedArrayBuffer(4));
let wallAnchor = process.hrtime.bigint();
let simAnchor = clock.nanos;
for (;;) {
  for (let i = 0; i < 20000; i++) {
    if (core.waiting) {
      // Asleep until the next alarm (at most 1 ms: start-of-frame): the state machines run up to it, their edges
      // at their own times.
      const step = Math.min(clock.nanosToNextAlarm || 1e6, 1e6);
      sleeps++;
      slept += step;
      if (pioActive()) stepPIO(clock.nanos + step);
      clock.tick(step);
      if (core.waiting) break;
      continue;
    }
    if (core.PC < 0x4000 && hookAt.has(core.PC)) {
      romHooks.get(core.PC)(core.registers);
      core.PC = core.LR & ~1;
      continue;
    }
    const cycles = core.executeInstruction();
    instrs++;
    clock.tick(cycles * CYCLE_NS);
  }
  if (pioActive()) stepPIO(clock.nanos);
  if (core.waiting) flush(); // idle: the front end learns what happened and how much time passed
  pollHost();
  if (DEBUG && Math.random() < 0.001) log(`t=${clock.nanos / 1e6} ms pc=${core.PC.toString(16)} waiting=${core.waiting} held=${!!heldRead} flushes=${flushes} gates=${gates} tokens=${nextToken} flushms=${Number(flushNs / 1000000n)} instr=${instrs} sleeps=${sleeps} slept=${Math.round(slept / 1e3)}us busy=${pioBusy()}`);
  // Idle (asleep with no state machine at work: not a pulse the CPU sleeps through), simulated time goes no
  // faster than the wall clock; any work, or a window open, and it runs as fast as the host allows.
  const now = process.hrtime.bigint();
  if (!core.waiting || pioBusy()) {
    wallAnchor = now;
    simAnchor = clock.nanos;
  } else {
    const ahead = clock.nanos - simAnchor - Number(now - wallAnchor);
    if (ahead > 2e5) Atomics.wait(nap, 0, 0, Math.min(ahead / 1e6, 2));
  }
}
