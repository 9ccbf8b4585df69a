local progress = require "sluice.progress"
local H = require "helper"

describe("sluice.progress", function()
  local function capture()
    local path = os.tmpname()
    return assert(io.open(path, "w+")), path
  end

  it("writes only the final summary when quiet (as for a non-terminal)", function()
    local f, path = capture()
    local p = progress.new { label = "users", total = 5000, out = f, quiet = true }
    assert.is_false(p.live)
    p:update(10, 100)
    local line = p:finish(5000, 2e6)
    f:seek("set"); local text = f:read("*a"); f:close(); os.remove(path)
    assert.are.equal(line .. "\n", text)
    assert.truthy(line:match("^users: 5000 rows, [%d.]+[kM]? rows/s, [%d.]+ MB/s, 0:00$"), line)
  end)

  it("draws a bar with an ETA when the total is known", function()
    local p = progress.new { label = "load", total = 1000, out = io.stderr }
    p.color = false
    local s = p:line(250, 0)
    assert.truthy(s:find("[######..................]  25% ETA", 1, true), s)
  end)

  it("formats every field one way: exact rows, k/M rates, decimal MB/s, m:ss", function()
    assert.are.equal("812", progress.rate(812.4))
    assert.are.equal("9999", progress.rate(9999))
    assert.are.equal("45.6k", progress.rate(45600))
    assert.are.equal("1.23M", progress.rate(1234567))
    assert.are.equal("0:07", progress.clock(7.2))
    assert.are.equal("2:05", progress.clock(125))
    assert.are.equal("1:01:01", progress.clock(3661))
    assert.are.equal("--:--", progress.clock(1 / 0))
    local p = progress.new { label = "t copy", quiet = true }
    function p.elapsed() return 2 end -- two seconds in
    assert.are.equal("t copy: 250000 rows, 125.0k rows/s, 2.5 MB/s, 0:02", p:line(250000, 5e6, true))
    -- a file: the bytes read of its size, and the ETA they give
    local f = progress.new { label = "t copy_from_file", total_bytes = 4e6, quiet = true }
    f.color = false
    function f.elapsed() return 2 end
    assert.are.equal("t copy_from_file: 1000 rows, 500 rows/s, 0.5 MB/s, 0:02 "
                     .. "[######..................]  25% 1.0/4.0 MB ETA 0:06",
                     f:line(1000, 1e6, false, 1e6))
  end)

  it("draws nothing in its first second, then at most every 200 ms", function()
    local f, path = capture()
    local p = progress.new { label = "x", out = f }
    p.live = true -- as on a terminal
    p:update(1, 1)
    p.started = progress.now() - 1.5
    p:update(2, 2)
    p:update(3, 3) -- within 200 ms of the last: skipped
    p:hide()
    p:hide() -- its line is gone: nothing more
    f:seek("set"); local text = f:read("*a"); f:close(); os.remove(path)
    assert.are.equal("\r\27[Kx: 2 rows, 1 rows/s, 0.0 MB/s, 0:02\r\27[K", text)
  end)

  it("stays silent when asked", function()
    local f, path = capture()
    local p = progress.new { out = f, silent = true }
    p:finish(1, 1)
    f:seek("set"); local text = f:read("*a"); f:close(); os.remove(path)
    assert.are.equal("", text)
  end)

  it("draws no live line under sluice --quiet (SLUICE_QUIET), even on a terminal", function()
    local code, out, err = H.sluice([[--quiet -e 'local p = require("sluice").progress; ]]
      .. [[print(p.quiet(), p.new{}.live, os.getenv("SLUICE_QUIET"))']])
    assert.are.equal(0, code, err)
    assert.are.equal("true\tfalse\t1\n", out)
    code, out = H.sluice("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("  --quiet       no live progress lines (sets SLUICE_QUIET=1);", 1, true), out)
  end)
end)

-- Child sluice processes run the paths of fixtures/progress/paths.lua
-- (each slowed to about 1.3 s): on a pseudo-terminal, with stderr to a
-- file, under --quiet, with quiet = true on each call.
describe("progress of the long paths", function()
  local fixture = H.root .. "/tests/fixtures/progress/"
  local PATHS = { "copy", "copy_reject", "copy_from_file", "save_all", "batch", "pipeline", "upsert" }
  -- label and rows of each path's summary (db:copy in reject mode: the
  -- rows loaded)
  local SUMMARY = {
    copy = { "copy", 2000 }, copy_reject = { "copy", 1999 }, copy_from_file = { "copy_from_file", 10000 },
    save_all = { "save_all", 2000 }, batch = { "batch", 2000 },
    pipeline = { "pipeline", 2000 }, upsert = { "upsert", 2000 },
  }
  local runs = {}

  -- Run every case at once (they mostly sleep): name -> { out = the
  -- terminal's bytes or stderr, code = exit status }.
  setup(function()
    local cases = {
      tty = { tty = true, mode = "normal", paths = PATHS },
      file = { mode = "normal", paths = PATHS },
      quietflag = { tty = true, flag = "--quiet", mode = "normal", paths = PATHS },
      quietopt = { tty = true, mode = "quiet", paths = PATHS },
      nested = { tty = true, mode = "normal",
                 paths = { "load:batch", "load:pipeline", "load:copy_binary", "load:upsert",
                           "load:unlogged_staging", "load_file" } },
    }
    local dir = H.tmpdir()
    local cmds = {}
    for name, c in pairs(cases) do
      local args = { H.q(H.exe) }
      if c.flag then args[#args + 1] = c.flag end
      args[#args + 1] = H.q(fixture .. "paths.lua")
      args[#args + 1] = c.mode
      args[#args + 1] = "pt_" .. name
      for _, p in ipairs(c.paths) do args[#args + 1] = p end
      local cmd = table.concat(args, " ")
      local out = dir .. "/" .. name
      if c.tty then
        cmd = ("env -u NO_COLOR python3 %s %s %s >/dev/null 2>&1"):format(H.q(fixture .. "pty_run.py"),
                                                                         H.q(out), cmd)
      else
        cmd = cmd .. " >/dev/null 2>" .. H.q(out)
      end
      cmds[#cmds + 1] = ("(%s; echo $? > %s) &"):format(cmd, H.q(out .. ".code"))
    end
    cmds[#cmds + 1] = "wait"
    assert.are.equal(0, (H.run(table.concat(cmds, " "))))
    for name in pairs(cases) do
      local out = dir .. "/" .. name
      runs[name] = { out = H.slurp(out), code = tonumber(H.slurp(out .. ".code")) }
      os.remove(out); os.remove(out .. ".code")
    end
    os.remove(dir)
  end)

  -- The summary line of a path: exact fields, the rate within reason.
  local function check_summary(line, tbl, path)
    local want = SUMMARY[path]
    local label, rows, rate, mb, m, s = line:match(
      "^(.-): (%d+) rows, ([%d.]+[kM]?) rows/s, (%d+%.%d) MB/s, (%d+):(%d%d)$")
    assert.truthy(label, path .. ": " .. line)
    assert.are.equal(tbl .. " " .. want[1], label)
    assert.are.equal(want[2], tonumber(rows))
    local secs = tonumber(m) * 60 + tonumber(s)
    assert.truthy(secs >= 1 and secs <= 30, line) -- slowed to about 1.3 s
    assert.is_nil(rate:find("k") or rate:find("M"), line) -- under 10k rows/s: plain
    assert.truthy(tonumber(rate) > want[2] / 31 and tonumber(rate) < want[2] / 0.9, line)
    assert.truthy(tonumber(mb) >= 0, line)
  end

  -- What a terminal got, line by line: each summary (a line ended by a
  -- line feed) with the live lines drawn before it ("\r\27[K" + text,
  -- colours removed; the summary's own "\r\27[K" clears the last one).
  local function screen(out)
    local lines = {}
    for line in out:gsub("\r\n", "\n"):gmatch("([^\n]*)\n") do
      local parts = {}
      for piece in ("\r" .. line):gmatch("\r([^\r]*)") do
        piece = piece:gsub("^\27%[K", ""):gsub("\27%[%d*m", "")
        if piece ~= "" then parts[#parts + 1] = piece end
      end
      local summary = table.remove(parts)
      lines[#lines + 1] = { lives = parts, summary = summary }
    end
    assert.is_nil(out:gsub("\r\n", "\n"):match("\n([^\n]+)$"), "a line left unfinished")
    return lines
  end

  it("draws the live line on a terminal after about a second, then the summary", function()
    local r = runs.tty
    assert.are.equal(0, r.code, r.out)
    local lines = screen(r.out)
    assert.are.equal(#PATHS, #lines, r.out)
    for k, path in ipairs(PATHS) do
      local label = "pt_tty " .. SUMMARY[path][1]
      local lives = lines[k].lives
      assert.truthy(#lives >= 1, path .. ": no live line")
      for _, text in ipairs(lives) do
        assert.are.equal(label .. ": ", text:sub(1, #label + 2), text)
        assert.truthy(text:match("^.-: %d+ rows, [%d.]+[kM]? rows/s, %d+%.%d MB/s, %d+:%d%d"), text)
      end
      -- after about a second: none in the first one
      assert.is_nil(lives[1]:match(", 0:00"), lives[1])
      if path == "copy_from_file" then
        -- a file: bytes read of its size and an ETA; the bar in colour
        -- (NO_COLOR is unset)
        assert.truthy(lives[1]:match(" %[[#.]+%] +%d+%% %d+%.%d/2%.1 MB ETA %d+:%d%d$"), lives[1])
        assert.truthy(r.out:find("[\27[32m#", 1, true), r.out)
      else
        assert.is_nil(lives[1]:find("[", 1, true), lives[1]) -- no total known: no bar
      end
      check_summary(lines[k].summary, "pt_tty", path)
    end
  end)

  it("writes only the summaries when stderr is no terminal, or under --quiet", function()
    for _, name in ipairs { "file", "quietflag" } do
      local r = runs[name]
      assert.are.equal(0, r.code, r.out)
      assert.is_nil(r.out:find("\27", 1, true), r.out)
      local lines = {}
      for l in r.out:gsub("\r\n", "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
      assert.are.equal(#PATHS, #lines, r.out)
      for k, path in ipairs(PATHS) do check_summary(lines[k], "pt_" .. name, path) end
    end
  end)

  it("shows nothing with quiet = true on each call, even on a terminal", function()
    assert.are.equal(0, runs.quietopt.code, runs.quietopt.out)
    assert.are.equal("", runs.quietopt.out)
  end)

  it("shows only sluice.load's line and summary for the paths inside a load", function()
    local r = runs.nested
    assert.are.equal(0, r.code, r.out)
    local lines = screen(r.out)
    -- every line drawn is a load's ("pt_nested <strategy>"), and each
    -- load wrote exactly one summary, its own (read = loaded + rejected)
    local want = { "batch", "pipeline", "copy_binary", "upsert", "unlogged_staging" }
    assert.are.equal(#want + 1, #lines, r.out)
    for k, st in ipairs(want) do
      local label = "pt_nested " .. st .. ": "
      assert.truthy(#lines[k].lives >= 1, st .. ": no live line")
      for _, text in ipairs(lines[k].lives) do
        assert.are.equal(label, text:sub(1, #label), text)
      end
      assert.truthy(lines[k].summary:match(("^pt_nested %s: 2000 rows, %%d+ rows/s, %%d+%%.%%d MB/s, "
        .. "%%d+:%%d%%d  read 2000 = loaded 2000 %%+ rejected 0$"):format(st)), lines[k].summary)
    end
    -- copy_from_file in reject mode loads through sluice.load: its line
    -- (with the bytes read of the file) and summary, with the rows set
    -- aside
    local f = lines[#want + 1]
    for _, text in ipairs(f.lives) do
      assert.truthy(text:match("^pt_nested copy_from_file: %d+ rows, .* %d+%.%d/2%.1 MB ETA %d+:%d%d$"), text)
    end
    assert.truthy(f.summary:match("^pt_nested copy_from_file: 10000 rows, [%d.]+k? rows/s, "
      .. "%d+%.%d MB/s, %d+:%d%d  read 10000 = loaded 9996 %+ rejected 4$"), f.summary)
  end)
end)
