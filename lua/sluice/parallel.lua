--- sluice.parallel: worker processes, and sluice.load with jobs = N.
--
--   local results, summary = sluice.parallel { jobs = 4, run = function(w)
--     local db = sluice.connect()             -- a worker connects on its own
--     ... w.index (1..w.count), sluice.worker.index ...
--     return { rows = n }                      -- sent back to the parent
--   end }
--
-- A worker is a fork of the script's process (runtime/workers.c): it has
-- everything the script had built before the call, its own Lua state and
-- no connection of its own (the parent's ones are disowned: any use raises
-- "this connection belongs to the parent process; a worker connects on its
-- own", and closing them cannot touch the parent's sessions).  It ends when
-- run returns (its value goes back to the parent, which must be made of
-- strings, numbers, booleans, sluice.null and tables of them) or raises
-- (the parent raises "worker k of N failed: ...").  Workers print nothing
-- on stderr of their own: progress and errors go through the parent.
--
-- sluice.load{ ..., jobs = N } (or `sluice --jobs N`, which sets the
-- default) loads with N workers: the parent deals the input in chunks to
-- the workers that ask for one, each worker loads its chunks on its own
-- connection (see M.load below and README.md, "Parallel loading").
local core = require "sluice.core"
local conn = require "sluice.conn"
local progress = require "sluice.progress"
local csv = require "sluice.csv"

local M = {}

-- message types, worker -> parent
local T_RESULT, T_ERROR, T_READY, T_DONE, T_PREPARED = 2, 3, 4, 5, 6
-- parent -> worker
local T_CHUNK, T_END, T_ABORT, T_COMMIT = 10, 11, 12, 13

--- sluice.worker: { index = k, count = N } inside a worker, nil outside.
M.worker = nil

--- The nodes a load connects its workers to when it names none: `sluice
-- --nodes LIST` (SLUICE_LOAD_NODES, comma-separated), else nil.
function M.default_nodes()
  if M.worker then return nil end
  local s = os.getenv("SLUICE_LOAD_NODES")
  if not s or s == "" then return nil end
  local t = {}
  for n in s:gmatch("[^,]+") do
    n = n:match("^%s*(.-)%s*$")
    if n ~= "" then t[#t + 1] = n end
  end
  return #t > 0 and t or nil
end

--- The share a load takes when it names none: `sluice --shard k/K`
-- (SLUICE_SHARD), else nil.
function M.default_shard()
  if M.worker then return nil end
  local k, K = (os.getenv("SLUICE_SHARD") or ""):match("^(%d+)/(%d+)$")
  if not k then return nil end
  return { tonumber(k), tonumber(K) }
end

--- The jobs a load or sluice.parallel runs with when it names none:
-- `sluice --jobs N` (SLUICE_JOBS), 1 inside a worker or without it.
function M.default_jobs()
  if M.worker then return 1 end
  local n = tonumber(os.getenv("SLUICE_JOBS") or "")
  if n and n >= 1 and n % 1 == 0 then return n end
  return 1
end

------------------------------------------------------------ values
-- Values cross the process boundary as Lua source (loadstring reads it
-- back): exact for strings, numbers (%.17g), int64 cdata, booleans,
-- sluice.null and tables of them.

local null = core.null

local function ser(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = ("%q"):format(v)
  elseif t == "number" then
    if v ~= v then
      out[#out + 1] = "0/0"
    elseif v == math.huge then
      out[#out + 1] = "1/0"
    elseif v == -math.huge then
      out[#out + 1] = "-1/0"
    elseif v == 0 and 1 / v < 0 then
      out[#out + 1] = "-0.0"
    else
      out[#out + 1] = ("%.17g"):format(v)
    end
  elseif t == "boolean" or t == "nil" then
    out[#out + 1] = tostring(v)
  elseif v == null then
    out[#out + 1] = "N"
  elseif t == "cdata" then
    local s = tostring(v)
    if not s:match("^%-?%d+U?LL$") then
      error("cannot hand a " .. s .. " to another process (int64 only)", 0)
    end
    out[#out + 1] = s
  elseif t == "table" then
    out[#out + 1] = "{"
    local n = #v
    for i = 1, n do
      ser(v[i], out)
      out[#out + 1] = ","
    end
    for k, x in pairs(v) do
      if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
        out[#out + 1] = "["
        ser(k, out)
        out[#out + 1] = "]="
        ser(x, out)
        out[#out + 1] = ","
      end
    end
    out[#out + 1] = "}"
  else
    error("cannot hand a " .. t .. " to another process", 0)
  end
end

function M.encode(v)
  local out = {}
  ser(v, out)
  return table.concat(out)
end

function M.decode(s)
  local f = assert(loadstring("local N = ...; return " .. s, "=values"))
  return f(null)
end

-- A worker's error as a table the parent can raise again.
local function error_info(e)
  if type(e) == "table" then
    local t = {}
    for k, x in pairs(e) do
      local tx = type(x)
      if tx == "string" or tx == "number" or tx == "boolean" then t[k] = x end
    end
    t.message = t.message or tostring(e)
    t.is_object = true
    return t
  end
  -- a position inside sluice's own modules tells the user nothing
  return { message = (tostring(e):gsub("^[^\n]-/sluice/[%w_]+%.lua:%d+: ", "")) }
end

local function now() return progress.now() end

------------------------------------------------------------ workers

-- Fork `jobs` workers; in worker k run body(w) and end the process there
-- (never returns in a worker).  In the parent: the pool.
local function spawn(jobs, body)
  io.stdout:flush()
  io.stderr:flush()
  collectgarbage() -- nothing of the parent's left for a worker's collector to finish
  local pool, k = core.workers_fork(jobs)
  if pool then return pool end
  local w = { index = k, count = jobs }
  M.worker = w
  require("sluice").worker = w
  local ok, res = xpcall(function() return body(w) end, function(e)
    if type(e) == "string" and os.getenv("SLUICE_DEBUG") then return debug.traceback(e, 2) end
    return e
  end)
  local sent
  if ok then
    sent = pcall(core.worker_send, T_RESULT, M.encode(res))
    if not sent then
      core.worker_send(T_ERROR, M.encode({ message = "the worker's result cannot be sent: "
                                                   .. "it must be made of strings, numbers, "
                                                   .. "booleans, sluice.null and tables" }))
    end
  else
    pcall(core.worker_send, T_ERROR, M.encode(error_info(res)))
  end
  io.stdout:flush()
  core.worker_exit(ok and sent and 0 or 1)
end

local GRACE = 10 -- seconds the workers get to stop after Ctrl-C or a failure

-- The parent's loop: poll the workers until all ended.  h.message(k, type,
-- payload) gets the other messages; h.failed(k) is told the first time a
-- worker fails.  Interrupts are held meanwhile: Ctrl-C (or SIGTERM) is
-- forwarded to the workers, which roll back and stop; after GRACE seconds
-- the ones left are killed.  Returns results[k], errors[k], the signal
-- name of an interrupt (or nil).
local function supervise(pool, jobs, h)
  local results, errors, returned = {}, {}, {}
  local alive, interrupted, deadline = jobs, nil, nil
  local function fail(k, e)
    if errors[k] or returned[k] then return end
    errors[k] = e
    if h.failed then h.failed(k) end
  end
  core.interrupt_hold()
  local ok, err = pcall(function()
    while alive > 0 do
      local ev, k, a, b = pool:poll(0.1)
      if ev == "message" then
        if a == T_RESULT then
          results[k], returned[k] = M.decode(b), true
          if h.ended then h.ended(k) end
        elseif a == T_ERROR then
          fail(k, M.decode(b))
        elseif h.message then
          h.message(k, a, b)
        end
      elseif ev == "exit" then
        alive = alive - 1
        if not returned[k] and not errors[k] then
          fail(k, { message = b and ("killed by " .. b) or ("ended with status " .. a),
                    signal = b })
        elseif errors[k] and b then
          errors[k].signal = b
        end
      elseif ev == "none" then
        break
      end
      local sig = core.interrupt_pending()
      if sig and not interrupted then
        interrupted = sig
        pool:signal("INT")
        if h.interrupted then h.interrupted() end
        deadline = now() + GRACE
      end
      if h.tick then h.tick() end
      if deadline and now() > deadline then
        pool:stop(1)
        deadline = nil
      end
    end
  end)
  if not ok then pool:stop(1) end
  -- taken before the release, which would raise it at once
  if interrupted then core.interrupt_take() end
  core.interrupt_release()
  if not ok then error(err, 0) end
  pool:close()
  return results, errors, interrupted
end

local function check_jobs(jobs, where)
  if type(jobs) ~= "number" or jobs < 1 or jobs > 256 or jobs % 1 ~= 0 then
    error(where .. ": jobs must be an integer from 1 to 256, got " .. tostring(jobs), 3)
  end
end

-- "worker 2 of 4 failed: ..." for each failure, in worker order (not
-- those that stopped because they were told to: aborted[k]).
local function failures(errors, jobs, aborted)
  local t = {}
  for k = 1, jobs do
    local e = errors[k]
    if e and not (aborted and aborted[k]) then
      t[#t + 1] = ("worker %d of %d failed: %s"):format(k, jobs,
                                                       (tostring(e.message):gsub("^load: ", "")))
    end
  end
  return t
end

--- sluice.parallel{ jobs = N, run = function(w) ... end } -> results,
-- summary (see the top).  results[k] is worker k's return value; summary
-- = { jobs, seconds }.  A worker that fails makes the call raise, after
-- the others ended (they are not stopped: run decides what they do).
function M.parallel(o)
  if type(o) ~= "table" then error("parallel: expected a table of options", 2) end
  if type(o.run) ~= "function" then error("parallel: run = function(w) ... end is required", 2) end
  for k in pairs(o) do
    if k ~= "jobs" and k ~= "run" then
      error("parallel: unknown option '" .. tostring(k) .. "' (jobs, run)", 2)
    end
  end
  local jobs = o.jobs or M.default_jobs()
  check_jobs(jobs, "parallel")
  if M.worker then error("parallel: a worker cannot start workers of its own", 2) end
  local t0 = now()
  if jobs == 1 then
    local r = o.run({ index = 1, count = 1 })
    return { r }, { jobs = 1, seconds = now() - t0 }
  end
  local pool = spawn(jobs, o.run)
  local results, errors, interrupted = supervise(pool, jobs, {})
  local t = failures(errors, jobs)
  if interrupted then
    table.insert(t, 1, ("interrupted (%s): the workers were stopped"):format(interrupted))
  end
  if #t > 0 then error("parallel: " .. table.concat(t, "; "), 2) end
  return results, { jobs = jobs, seconds = now() - t0 }
end

------------------------------------------------------- parallel loads
-- The input is dealt in chunks to the workers that ask for one:
--   range  a generator's g:rows(first, last, fn) (or any source with
--          first, last and seek(index)): a chunk is an index range, made
--          by the worker itself after src:seek(first of the range);
--   list   an array: a chunk is an index range of it (the workers have
--          the list: they are forks);
--   csv    a reader of sluice.csv.open / .rows: the parent cuts the
--          (decompressed) input into record-aligned chunks (csvcut.c) and
--          sends their bytes; the worker reads a chunk with the reader's
--          options, numbering lines and records as the whole file does;
--   iter   any other iterator: the parent pulls its rows and sends them
--          in chunks of values.

local DEFAULT_CHUNK_ROWS, DEFAULT_CHUNK_BYTES = 100000, 8 * 1024 * 1024
local ITER_CHUNK_ROWS = 500
local HUGE = 2 ^ 52

local function is_range_source(rows)
  local t = type(rows)
  return (t == "table" or t == "userdata") and type(rows.first) == "number"
         and type(rows.last) == "number" and type(rows.seek) == "function"
         and type(rows.next) == "function" and type(rows.position) == "function"
end

-- The plan: kind, and for the parent a chunk maker next_chunk() -> id,
-- payload (nil at the end), the rows in all (when known) and the input's
-- identity (for the ledger).
local function plan(o, chunk_rows, chunk_bytes)
  local rows = o.rows
  local reader = csv.is_reader(rows) and rows or (type(rows) == "function" and csv.reader_of(rows))
  if reader then
    local opts = core.csv_reader_options(reader)
    if opts.path == "-" then
      error("load: jobs = N cannot cut standard input into chunks; give a file", 0)
    end
    local rec = tonumber((reader:position() or ""):match("^%d+:%d+:(%d+):"))
    if rec and rec > 0 then
      error("load: jobs = N needs a CSV reader that nothing was read from yet (it read "
            .. rec .. " records)", 0)
    end
    local cutter = core.csv_cutter(opts.path, opts.delimiter, opts.quote, opts.skip)
    local header = ""
    if opts.header then
      header = cutter:next(1, 1) or ""
    end
    -- a plain file (no gzip, no BOM): a worker reads its chunk from the
    -- file itself, the reader's own seek; else the chunk's bytes travel
    local f = io.open(opts.path, "rb")
    local head = f and f:read(3) or ""
    if f then f:close() end
    local in_file = head:sub(1, 2) ~= "\31\139" and head ~= "\239\187\191"
    local hdr = opts.header and 1 or 0
    local wopts, fopts = {}, {}
    for k, v in pairs(opts) do
      if k ~= "path" then wopts[k], fopts[k] = v, v end
    end
    wopts.skip = 0
    local n = 0
    return {
      kind = "csv", opts = wopts, file_opts = fopts, path = opts.path, header = header,
      identity = reader:identity() .. (" chunk_bytes=%d"):format(chunk_bytes),
      total_bytes = reader.file_size,
      bytes_read = function() return cutter:bytes_read() end,
      next_chunk = function()
        local bytes, line, before, count, offset = cutter:next(chunk_bytes, 0, in_file)
        if bytes == nil then cutter:close() return nil end
        before = before - hdr -- the header is a record to the cut, not a row
        n = n + 1
        local id = ("%06d"):format(n)
        if in_file then
          return id, ("F %d %d %d %d"):format(offset, line, before, count), count
        end
        return id, ("%d %d %d\n"):format(line, before, count) .. bytes, count
      end,
    }
  end
  local function ranges(first, last, kind, identity)
    local a = first
    return {
      kind = kind, total = last - first + 1, identity = identity .. (" chunk_rows=%d"):format(chunk_rows),
      next_chunk = function()
        if a > last then return nil end
        local b = math.min(a + chunk_rows - 1, last)
        local id = ("%d-%d"):format(a, b)
        local count = b - a + 1
        a = b + 1
        return id, id, count
      end,
    }
  end
  if is_range_source(rows) then
    return ranges(rows.first, rows.last, "range",
                  rows.identity and rows:identity() or "a source")
  end
  if type(rows) == "table" and not (csv.is_reader(rows)) and type(rows.next) ~= "function" then
    return ranges(1, #rows, "list", ("a list of %d rows"):format(#rows))
  end
  if type(rows) == "function" then
    local n, done = 0, false
    return {
      kind = "iter", identity = "an iterator function" .. (" chunk_rows=%d"):format(ITER_CHUNK_ROWS),
      next_chunk = function()
        if done then return nil end
        local t = {}
        for i = 1, ITER_CHUNK_ROWS do
          local item = rows()
          if item == nil then done = true break end
          t[i] = item
        end
        if #t == 0 then return nil end
        n = n + 1
        return ("%06d"):format(n), M.encode(t), #t
      end,
    }
  end
  error("load: jobs = N takes a list, an iterator function, a CSV reader or a generator's "
        .. "rows (a source with first, last and seek); this input has no way to be cut", 0)
end

-- In a worker: the items of one chunk (payload as next_chunk made it).
local function chunk_items(p, payload)
  if p.kind == "range" then
    local src = p.rows
    local a, b = payload:match("^(%d+)%-(%d+)$")
    a, b = tonumber(a), tonumber(b)
    src:seek(tostring(a))
    return function()
      local pos = tonumber(src:position())
      if pos and pos > b then return nil end
      return (src:next())
    end
  elseif p.kind == "list" then
    local a, b = payload:match("^(%d+)%-(%d+)$")
    local i, last, list = tonumber(a) - 1, tonumber(b), p.rows
    return function()
      i = i + 1
      if i > last then return nil end
      return list[i]
    end
  elseif p.kind == "csv" and payload:sub(1, 2) == "F " then
    -- the chunk in the file: the reader seeks to its first record and
    -- hands out its records (lines and records numbered as in the file)
    local off, line, before, count = payload:match("^F (%d+) (%d+) (%d+) (%d+)$")
    local it = csv.rows(p.path, p.file_opts)
    local r = csv.reader_of(it)
    local width = r.header and #r.header or 0
    r:seek(("%s:%s:%s:%d"):format(off, line, before, width))
    local left = tonumber(count)
    return function()
      if left <= 0 then return nil end
      left = left - 1
      return (it())
    end
  elseif p.kind == "csv" then
    local line, before, nl = payload:match("^(%d+) (%d+) %d+\n()")
    local path = core.worker_chunk_file(p.header, payload:sub(nl))
    local it = csv.rows(path, p.opts)
    core.csv_relabel(csv.reader_of(it), p.path, tonumber(line), tonumber(before))
    return it
  else
    local list, i = M.decode(payload), 0
    return function()
      i = i + 1
      return list[i]
    end
  end
end

-- The strategies whose load commits once at the end, where a worker can
-- wait for the others before its COMMIT.
local TWO_PHASE = { copy_text = true, copy_csv = true, copy_binary = true, batch = true,
                    pipeline = true }

-- The options every worker's own sluice.load gets from the caller's.
local PASS = { "table", "columns", "strategy", "commit_every", "batch_rows", "max_age_ms",
               "sync_every", "key", "synchronous_commit", "connections", "layouts", "transform",
               "freeze" }

-- A worker's connection: to db's target, with db's search_path, TimeZone,
-- DateStyle and timeout (names and date/time text mean the same there).
local function connect_like(target, settings, timeout)
  local db = conn.connect(target, { timeout = timeout })
  db:query("select set_config('search_path', $1, false), set_config('TimeZone', $2, false), "
           .. "set_config('DateStyle', $3, false)", settings.sp, settings.tz, settings.ds)
  return db
end

-- What worker w does in a parallel load: connect, ask for chunks until
-- there are none, load them (one load over all of them, or one
-- checkpointed load per chunk), report.
local function load_worker(p)
  local load = require("sluice.load").load
  -- nodes: worker k connects to node (k - 1) % #nodes + 1
  local target = p.nodes and p.nodes[(M.worker.index - 1) % #p.nodes + 1] or p.target
  local db = connect_like(target, p.settings, p.timeout)
  local function ask()
    core.worker_send(T_READY, "")
    local t, payload = core.worker_recv()
    if t == T_CHUNK then
      local id, rest = payload:match("^([^\n]*)\n(.*)$")
      return id, rest
    elseif t == T_ABORT then
      error("stopped: another worker failed", 0)
    end
    return nil
  end
  -- all or nothing: every worker has sent its rows before any commits
  local function before_commit()
    core.worker_send(T_PREPARED, "")
    local t = core.worker_recv()
    if t ~= T_COMMIT then error("stopped: another worker failed", 0) end
  end
  local base = {}
  for _, k in ipairs(PASS) do base[k] = p.o[k] end
  base.db, base.quiet, base.jobs = db, true, 1
  if p.checkpoint then
    local sum = { read = 0, loaded = 0, rejected = 0, bytes = 0, chunks = 0 }
    while true do
      local id, payload = ask()
      if not id then break end
      local lo = {}
      for k, v in pairs(base) do lo[k] = v end
      lo.rows = chunk_items(p, payload)
      lo.checkpoint = p.checkpoint .. "#" .. id
      lo.checkpoint_rows, lo.checkpoint_bytes = HUGE, HUGE
      local s = load(lo)
      sum.read, sum.loaded = sum.read + s.read, sum.loaded + s.loaded
      sum.rejected, sum.bytes = sum.rejected + s.rejected, sum.bytes + s.bytes
      sum.chunks = sum.chunks + 1
      core.worker_send(T_DONE, M.encode({ id = id, read = s.read, loaded = s.loaded,
                                          bytes = s.bytes, committed = true }))
    end
    db:close()
    return sum
  end
  -- one load over every chunk this worker gets: one transaction (or what
  -- the strategy commits), the rows of each chunk counted as it ends
  local id, payload = ask()
  if not id then
    -- nothing was left for this worker: no load (a model's table is
    -- told by its first row)
    db:close()
    return { read = 0, loaded = 0, rejected = 0, bytes = 0, chunks = 0 }
  end
  local cur, n, chunks = chunk_items(p, payload), 0, 1
  local lo = {}
  for k, v in pairs(base) do lo[k] = v end
  if TWO_PHASE[lo.strategy or "copy_binary"] then lo.before_commit = before_commit end
  lo.rows = function()
    while true do
      if cur then
        local item = cur()
        if item ~= nil then
          n = n + 1
          return item
        end
        core.worker_send(T_DONE, M.encode({ id = id, read = n }))
        n = 0
      end
      id, payload = ask()
      if not id then return nil end
      chunks = chunks + 1
      cur = chunk_items(p, payload)
    end
  end
  local s = load(lo)
  db:close()
  return { read = s.read, loaded = s.loaded, rejected = s.rejected, bytes = s.bytes,
           chunks = chunks }
end

-- The ledger's chunks of checkpoint name that are done.
local function chunks_done(db, ledger, name)
  local done = {}
  if not db:query_one("select to_regclass($1) is not null as e", ledger).e then return done end
  local rows = db:query("select substr(name, length($1) + 2) as id, rows_read, rows_loaded, "
                        .. "rows_rejected from " .. ledger .. " where left(name, length($1) + 1) "
                        .. "= $1 || '#' and done", name)
  for _, r in ipairs(rows) do done[r.id] = r end
  return done
end

-- What a failed parallel load committed, in words, and the rows.
local function committed_text(st, jobs)
  if st.checkpoint then
    -- the ledger knows (a chunk whose COMMIT went through as Ctrl-C came
    -- is there, though its worker could not say so)
    local ok, d = pcall(chunks_done, st.db, st.ledger, st.checkpoint)
    if ok then
      local chunks, rows = 0, 0
      for id, r in pairs(d) do
        if not st.done_before[id] then
          chunks, rows = chunks + 1, rows + r.rows_loaded
        end
      end
      st.committed_chunks, st.committed_rows = chunks, rows
    end
    if st.committed_chunks == 0 then
      return "no chunk of this run was committed", 0
    end
    return ("%d chunks of this run are committed and in the ledger (%d rows, %d in all "
            .. "with earlier runs); run the load again to go on"):format(
      st.committed_chunks, st.committed_rows, st.committed_rows + st.earlier_rows),
      st.committed_rows
  end
  local yes, no, c = {}, {}, 0
  for k = 1, jobs do
    local r = st.results[k]
    if r then
      yes[#yes + 1] = k
      c = c + r.loaded
    else
      no[#no + 1] = k
    end
  end
  local t = {}
  if #yes > 0 then
    t[1] = ("worker %s committed its rows (%d rows)"):format(table.concat(yes, ", "), c)
  end
  if #no > 0 then
    t[#t + 1] = ("worker %s committed nothing (rolled back)"):format(table.concat(no, ", "))
  end
  return table.concat(t, "; "), c
end

-- Whether the input can be cut (raises why not), without reading it.
function M.plan_check(o)
  local rows = o.rows
  local reader = csv.is_reader(rows) and rows or (type(rows) == "function" and csv.reader_of(rows))
  if reader then
    if core.csv_reader_options(reader).path == "-" then
      error("load: jobs = N cannot cut standard input into chunks; give a file", 0)
    end
    return true
  end
  if is_range_source(rows) or type(rows) == "function" then return true end
  if type(rows) == "table" and type(rows.next) ~= "function" then return true end
  error("load: jobs = N takes a list, an iterator function, a CSV reader or a generator's "
        .. "rows (a source with first, last and seek); this input has no way to be cut", 0)
end

--- sluice.load with jobs = N > 1 (load.lua checked the options).
-- explicit: jobs was the load's own option (else `--jobs`'s default,
-- which gives way, returning nil, where jobs = N cannot work).
function M.load(o, jobs, strategy, explicit)
  local function refuse(msg)
    if explicit then error("load: " .. msg, 0) end
  end
  if o.on_error == "reject" or o.rejects ~= nil or o.on_reject ~= nil then
    return refuse("jobs = N does not take reject mode (on_error = \"reject\", rejects, "
                  .. "on_reject) yet: load with jobs = 1")
  end
  if o.drop_indexes then
    return refuse("jobs = N cannot be combined with drop_indexes")
  end
  if o.retries then
    return refuse("jobs = N does not take retries (with checkpoint, run the load again: it "
                  .. "goes on from the ledger)")
  end
  if o.freeze then
    return refuse("jobs = N cannot be combined with freeze (COPY FREEZE needs the table "
                  .. "truncated in the one transaction that loads it)")
  end
  if o.rows ~= nil and o.rows == io.stdin then return refuse("standard input") end
  local okp, pl = pcall(function() return M.plan_check(o) end)
  if not okp then
    if explicit then error(pl, 0) end
    return nil
  end
  local db = o.db
  local target = conn.target(db)
  if target == nil then
    error("load: jobs = N needs a connection made by sluice.connect (its target is not known)", 0)
  end
  local chunk_rows = o.chunk_rows or (o.checkpoint and o.checkpoint_rows) or DEFAULT_CHUNK_ROWS
  local chunk_bytes = o.chunk_bytes or DEFAULT_CHUNK_BYTES
  local settings = db:query_one("select current_setting('search_path') as sp, "
                                .. "current_setting('TimeZone') as tz, "
                                .. "current_setting('DateStyle') as ds")
  local tbl = o.table
  local shown = type(tbl) == "table" and table.concat(tbl, ".") or tbl
  if tbl ~= nil then
    local qt = db:quote_table(tbl)
    if not qt or not db:query_one("select to_regclass($1) is not null as ok", qt).ok then
      error(("load: table \"%s\" does not exist"):format(tostring(shown)), 0)
    end
  end
  local p = plan(o, chunk_rows, chunk_bytes)
  p.o, p.rows, p.target, p.settings, p.timeout = o, o.rows, target, settings, db:timeout()
  p.nodes = o.nodes
  -- shard = { k, K }: this run takes chunks k, k + K, k + 2K, ... of the
  -- cut (which is the same on every machine for the same input and
  -- options); mine[id]: the chunks of this run's share
  local mine, all_chunks = {}, 0
  if o.shard then
    local k, K, cut = o.shard[1], o.shard[2], p.next_chunk
    p.next_chunk = function()
      while true do
        local id, payload, count = cut()
        if id == nil then return nil end
        all_chunks = all_chunks + 1
        if (all_chunks - 1) % K == k - 1 then
          mine[id] = true
          return id, payload, count
        end
      end
    end
  else
    local cut = p.next_chunk
    p.next_chunk = function()
      local id, payload, count = cut()
      if id ~= nil then
        all_chunks = all_chunks + 1
        mine[id] = true
      end
      return id, payload, count
    end
  end
  -- checkpoint: the run's own ledger row names the input and the cut;
  -- a chunk's row is "name#id", committed with the chunk
  local ck = o.checkpoint
  local ledger, done, earlier = nil, {}, { read = 0, loaded = 0, rejected = 0, chunks = 0 }
  local checkpoint = require "sluice.checkpoint"
  if ck then
    p.checkpoint = ck
    local why
    ledger, why = checkpoint.ledger(db)
    if not ledger then error("load: checkpoint: " .. why, 0) end
    checkpoint.ensure(db, ledger)
    local led = checkpoint.get(db, ledger, ck)
    local identity = "jobs: " .. p.identity
    if led and led.identity ~= identity then
      error(("load: checkpoint \"%s\" belongs to another input (%s); this load reads %s: "
             .. "sluice.reset_checkpoint(db, \"%s\") starts it over"):format(ck, led.identity,
             identity, ck), 0)
    end
    if led and led.done then
      if not o.quiet and o.summary ~= false then
        io.stderr:write(("load: checkpoint \"%s\" is complete (%d rows read, %d loaded, %d "
                         .. "rejected): nothing to do\n"):format(ck, led.rows_read,
                         led.rows_loaded, led.rows_rejected))
      end
      return { strategy = strategy, table = led.target, rows = led.rows_read,
               read = led.rows_read, loaded = led.rows_loaded, rejected = led.rows_rejected,
               bytes = 0, seconds = 0, rows_per_s = 0, mb_per_s = 0, index_seconds = 0,
               checkpoint = ck, already_done = true, jobs = jobs, chunks = 0 }
    end
    if not led then
      checkpoint.save(db, ledger, ck, { target = tostring(shown), identity = identity,
        strategy = strategy, position = "", rows_read = 0, rows_loaded = 0, rows_rejected = 0,
        done = false })
    end
    done = chunks_done(db, ledger, ck)
    if not o.shard then
      for _, r in pairs(done) do
        earlier.read = earlier.read + r.rows_read
        earlier.loaded = earlier.loaded + r.rows_loaded
        earlier.rejected = earlier.rejected + r.rows_rejected
        earlier.chunks = earlier.chunks + 1
      end
    end
  end
  local prog
  if not o.quiet then
    prog = progress.new { label = o.label or ((shown or "load") .. " " .. strategy
                                               .. (" jobs=%d"):format(jobs)),
                          total = o.total or p.total, total_bytes = p.total_bytes,
                          silent = o.summary == false }
  end
  local t0 = now()
  local st = { results = {}, checkpoint = ck, committed_chunks = 0, committed_rows = 0,
               earlier_rows = earlier.loaded, db = db, ledger = ledger, done_before = done }
  -- WAL written (nil when the server does not tell: a standby, no privilege)
  local okw0, wal0 = pcall(db.query_one, db, "select pg_current_wal_insert_lsn()::text as lsn")
  local read, bytes = earlier.read, 0
  local stopping, aborting = false, false
  local prepared, aborted, ended = {}, {}, {}
  local busy = {} -- workers with a chunk
  local function draw()
    if not prog then return end
    local nb, nw, ne = 0, 0, 0
    for k = 1, jobs do
      if ended[k] then ne = ne + 1 elseif busy[k] or prepared[k] then nb = nb + 1 else nw = nw + 1 end
    end
    prog.note = ("[%d loading, %d waiting, %d done]"):format(nb, nw, ne)
    prog:update(read, bytes, p.bytes_read and p.bytes_read())
  end
  local pool = spawn(jobs, function() return load_worker(p) end)
  local function abort_all()
    if aborting then return end
    stopping, aborting = true, true
    for k = 1, jobs do
      if not ended[k] then
        aborted[k] = true
        pool:send(k, T_ABORT, "")
      end
    end
  end
  -- once every worker has either sent all its rows or ended: commit all
  local function maybe_commit()
    if aborting then return end
    for k = 1, jobs do
      if not (prepared[k] or ended[k]) then return end
    end
    for k = 1, jobs do
      if prepared[k] then
        prepared[k] = nil
        pool:send(k, T_COMMIT, "")
      end
    end
  end
  local results, errors, interrupted = supervise(pool, jobs, {
    message = function(k, t, payload)
      if t == T_PREPARED then
        prepared[k] = true
        maybe_commit()
      elseif t == T_READY then
        if aborting then
          pool:send(k, T_ABORT, "")
          return
        end
        local id, chunk
        if not stopping then
          repeat
            id, chunk = p.next_chunk()
          until id == nil or not done[id]
        end
        if id == nil then
          stopping = true
          busy[k] = nil
          pool:send(k, T_END, "")
        else
          busy[k] = true
          pool:send(k, T_CHUNK, id .. "\n" .. chunk)
        end
      elseif t == T_DONE then
        local d = M.decode(payload)
        read = read + d.read
        bytes = bytes + (d.bytes or 0)
        if d.committed then
          st.committed_chunks = st.committed_chunks + 1
          st.committed_rows = st.committed_rows + d.loaded
        end
        draw()
      end
    end,
    failed = function(k)
      ended[k] = true
      -- the others finish the chunk they have (checkpoint: committed) and
      -- stop; without checkpoint they roll back: all or nothing
      stopping = true
      if not ck then abort_all() end
    end,
    ended = function(k)
      ended[k] = true
      maybe_commit()
    end,
    tick = draw,
    interrupted = function()
      if not ck then abort_all() end
    end,
  })
  st.results = results
  -- after Ctrl-C every worker's error is the interrupt: say it once
  local t = interrupted and { ("interrupted (%s): the %d workers stopped"):format(interrupted, jobs) }
            or failures(errors, jobs, aborted)
  if #t > 0 then
    if prog then prog:hide() end
    local text, c = committed_text(st, jobs)
    local first
    for k = 1, jobs do
      if errors[k] and not aborted[k] then first = errors[k] break end
    end
    local e = { message = "load: " .. table.concat(t, "; ") .. "; " .. text,
                committed_rows = c, in_doubt_rows = 0, checkpoint = ck,
                sqlstate = first and first.sqlstate, interrupted = interrupted,
                worker = first and first.worker }
    for k = 1, jobs do
      if errors[k] and not aborted[k] then e.worker = k break end
    end
    error(core.new_error(e), 0)
  end
  if o.shard then
    -- this share's chunks that earlier runs committed (any machine's)
    for id in pairs(mine) do
      local r = done[id]
      if r then
        earlier.read = earlier.read + r.rows_read
        earlier.loaded = earlier.loaded + r.rows_loaded
        earlier.rejected = earlier.rejected + r.rows_rejected
        earlier.chunks = earlier.chunks + 1
      end
    end
  end
  local sum = { read = earlier.read, loaded = earlier.loaded, rejected = earlier.rejected,
                bytes = 0, chunks = 0 }
  for k = 1, jobs do
    local r = results[k]
    sum.read, sum.loaded = sum.read + r.read, sum.loaded + r.loaded
    sum.rejected, sum.bytes = sum.rejected + r.rejected, sum.bytes + r.bytes
    sum.chunks = sum.chunks + r.chunks
  end
  if ck then
    -- the load is done when every chunk of the input is in the ledger (a
    -- share, --shard k/K, leaves the others' to their runs)
    local now_done, nd = chunks_done(db, ledger, ck), 0
    local all = { read = 0, loaded = 0, rejected = 0 }
    for _, r in pairs(now_done) do
      nd = nd + 1
      all.read, all.loaded = all.read + r.rows_read, all.loaded + r.rows_loaded
      all.rejected = all.rejected + r.rows_rejected
    end
    checkpoint.save(db, ledger, ck, { target = tostring(shown), identity = "jobs: " .. p.identity,
      strategy = strategy, position = "", rows_read = all.read, rows_loaded = all.loaded,
      rows_rejected = all.rejected, done = nd >= all_chunks })
  end
  local seconds = now() - t0
  local new = sum.read - earlier.read
  local wal_bytes
  if okw0 and type(wal0) == "table" and wal0.lsn then
    local okw, r = pcall(db.query_one, db, "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), "
                                           .. "$1::pg_lsn)::float8 as d", wal0.lsn)
    wal_bytes = okw and r and r.d or nil
  end
  if prog then prog:finish(sum.read, sum.bytes, sum.rejected) end
  return { strategy = strategy, table = shown, jobs = jobs, rows = sum.read, read = sum.read,
           loaded = sum.loaded, rejected = sum.rejected, bytes = sum.bytes, seconds = seconds,
           rows_per_s = new / seconds, mb_per_s = sum.bytes / seconds / 1e6, index_seconds = 0,
           wal_bytes = wal_bytes,
           chunks = sum.chunks, checkpoint = ck, resumed_from = ck and earlier.read or nil }
end

return M
