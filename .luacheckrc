std = "luajit"
max_line_length = 120
-- the REPL defines these for interactive use
files["lua/sluice/repl.lua"] = { globals = { "help", "db" } }
-- specs: busted globals; long SQL lines; `local ok, err = pcall(...)`
-- pairs where only err is checked
files["tests"] = { std = "+busted", max_line_length = 170, ignore = { "311", "211/ok" } }
