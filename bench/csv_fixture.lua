--- The CSV file of bench/csv_read.lua: what a newcomer's export looks
-- like.  Deterministic (sluice.gen, seed 2024): the same rows for the
-- same count, on any machine.
--
--   local fixture = require "csv_fixture"
--   local bytes = fixture.write(path, rows)
--   sluice bench/csv_fixture.lua path rows      (as a script: the same)
--
-- 9 columns with a header: id, email, name, signup_date ("MM/DD/YYYY"),
-- city, amount ("123.45"), score (0..100), note, status (a word).  About
-- a quarter of the lines have a note of a few words with a comma in it,
-- so quoted (and one in 20 of those holds a doubled quote); the others a
-- short note without one, or none (an empty unquoted field).  About 99 bytes a line (1,000,000
-- rows: ~99 MB).  Written by sluice.sink (CSV), which quotes what needs
-- quoting.
local sluice = require "sluice"

local M = {}

M.COLUMNS = { "id", "email", "name", "signup_date", "city", "amount", "score", "note",
              "status" }
local STATUS = { "active", "inactive", "pending", "banned", "trial" }
local FROM, TO = sluice.gen.parse_time("2015-01-01"), sluice.gen.parse_time("2024-12-31")

--- Write rows rows to path; returns the file's size in bytes.
function M.write(path, rows)
  local s = sluice.sink.file(path, { columns = M.COLUMNS, gzip = false })
  local g = sluice.gen(2024):stream("csv_read")
  for i = 1, rows do
    local r = g:at(i)
    local first, last = r:first_name(), r:last_name()
    local day = os.date("!%m/%d/%Y", r:date(FROM, TO))
    local note
    local k = r:int(1, 100)
    if k <= 25 then
      note = r:word() .. " " .. r:word() .. ", " .. r:text(8, 24)
      if k == 1 then note = note .. ' "sic"' end
    elseif k <= 70 then
      note = r:text(5, 17)
    else
      note = sluice.null -- an empty unquoted field
    end
    s:row(i, r:email(first, last), first .. " " .. last, day, r:city(),
          ("%d.%02d"):format(r:int(1, 999), r:int(0, 99)), r:int(0, 100), note,
          STATUS[r:int(1, #STATUS)])
  end
  assert(s:finish() == rows)
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  return size
end

-- run as a script: write the file arg[1] with arg[2] rows
if arg and arg[0] and arg[0]:match("csv_fixture%.lua$") and arg[1] then
  M.write(arg[1], assert(tonumber(arg[2]), "rows?"))
end

return M
