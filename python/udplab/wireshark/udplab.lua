-- udplab.lua: a Wireshark/tshark dissector for the chat protocol of udplab (ChatS, ChatC and the
-- Link between them).
--
-- Load it with  wireshark -X lua_script:udplab.lua chat.pcap  (tshark the same, with -2 so that
-- what a later datagram teaches applies to earlier ones), or copy it into Wireshark's personal
-- Lua plugins folder (Help > About > Folders). No port needs naming: the chat has no header of
-- its own, so the dissector finds it by its words. A datagram that is the heartbeat word (HB) or
-- the quit word (quit), with one trailing \n or \r\n allowed, goes to a chat server; from then on
-- every datagram to or from that address and port is the chat's. A link's listening port counts
-- as a server too (clients talk to it as to the server), so both sides of a link capture
-- dissect. A reply that is the prefix and a datagram just sent the other way (the server's echo,
-- ACK + message) also shows which side is the server, for a client that never sent a heartbeat
-- (netcat), and a datagram that carries what was just sent to a server, from elsewhere, is a link
-- passing it on to the next server. A datagram from an unknown side that starts with the prefix
-- is taken as a broadcast.
--
-- For a capture where that is not enough (other words, other traffic), name the server's UDP port:
--   * the preference "udplab.port" (Edit > Preferences > Protocols > UDPLAB, or
--     tshark -o udplab.port:PORT), or
--   * Decode As: tshark -d udp.port==PORT,udplab (Wireshark: Analyze > Decode As...).
--
-- Every datagram gets the field udplab.kind:
--   heartbeat  to the server, the heartbeat word (default HB)
--   quit       to the server, the quit word (default quit)
--   message    to the server, anything else: the server sends it on to every client
--   empty      an empty datagram (no payload): the server drops it
--   broadcast  from the server: the prefix (default ACK, field udplab.prefix) and then the
--              message (field udplab.message)
-- The words and the prefix are preferences too, for servers started with other ones.

local udplab = Proto("udplab", "udplab group chat")

local f_kind = ProtoField.string("udplab.kind", "Kind")
local f_prefix = ProtoField.string("udplab.prefix", "Prefix")
local f_message = ProtoField.string("udplab.message", "Message")
local f_word = ProtoField.string("udplab.word", "Word")
udplab.fields = { f_kind, f_prefix, f_message, f_word }

udplab.prefs.port = Pref.uint("Server port", 0,
    "The chat server's UDP port, for captures where its words do not show it (0: found by the words)")
udplab.prefs.heartbeat = Pref.string("Heartbeat word", "HB", "What clients send as a heartbeat")
udplab.prefs.quit = Pref.string("Quit word", "quit", "What clients send to leave")
udplab.prefs.prefix = Pref.string("Broadcast prefix", "ACK",
    "What the server puts before every message it sends on")

local udp_port = DissectorTable.get("udp.port")
udp_port:add_for_decode_as(udplab)
local registered = 0

function udplab.prefs_changed()
    if registered ~= 0 then
        udp_port:remove(registered, udplab)
    end
    registered = udplab.prefs.port
    if registered ~= 0 then
        udp_port:add(registered, udplab)
    end
end

-- What the capture has shown so far: the chat servers' addresses (a link's listening address
-- among them), the last datagram each side sent the other (to recognise an echo), and the last
-- RECENT payloads sent to a server (to recognise a link passing one on).
local RECENT = 64
local servers, last_sent, to_servers, oldest = {}, {}, {}, {}

function udplab.init()
    servers, last_sent, to_servers, oldest = {}, {}, {}, {}
end

local function remember_to_server(text)
    if to_servers[text] == nil then
        table.insert(oldest, text)
        if #oldest > RECENT then
            to_servers[table.remove(oldest, 1)] = nil
        end
    end
    to_servers[text] = true
end

local function source(pinfo)
    return tostring(pinfo.src) .. "|" .. pinfo.src_port
end

local function destination(pinfo)
    return tostring(pinfo.dst) .. "|" .. pinfo.dst_port
end

-- A word as the server compares it: the payload without one trailing \n or \r\n.
local function word(text)
    return (text:gsub("\r?\n$", ""))
end

local function is_word(text)
    local w = word(text)
    return w == udplab.prefs.heartbeat or w == udplab.prefs.quit
end

local function starts_with_prefix(text)
    local prefix = udplab.prefs.prefix
    return #prefix > 0 and text:sub(1, #prefix) == prefix
end

-- Learn from one datagram (only while the capture is read the first time, in order).
local function learn(text, pinfo)
    if pinfo.visited then
        return
    end
    local from, to = source(pinfo), destination(pinfo)
    if is_word(text) then
        servers[to] = true
    elseif starts_with_prefix(text) and last_sent[to .. ">" .. from] ==
            text:sub(#udplab.prefs.prefix + 1) then
        servers[from] = true
    elseif to_servers[text] and not servers[from] and #text > 0 then
        -- A link passing on what a client sent it (its heartbeat may have been lost on the way).
        servers[to] = true
    end
    last_sent[from .. ">" .. to] = text
    if servers[to] then
        remember_to_server(text)
    end
end

-- "to" (client to server), "from" (server to client), or nil if this is not the chat.
local function direction(text, pinfo, server_port)
    if server_port ~= 0 then
        if pinfo.dst_port == server_port then return "to" end
        if pinfo.src_port == server_port then return "from" end
    end
    if servers[destination(pinfo)] then return "to" end
    if servers[source(pinfo)] then return "from" end
    if is_word(text) then return "to" end
    if starts_with_prefix(text) then return "from" end
    return nil
end

local function show_empty(pinfo, tree, way)
    tree:add(udplab):add(f_kind, "empty")
    pinfo.cols.protocol = "UDPLAB"
    pinfo.cols.info = way == "to" and "empty datagram (the server drops it)" or "empty datagram"
end

local function show(buffer, pinfo, tree, way)
    if buffer:len() == 0 then
        return show_empty(pinfo, tree, way)
    end
    local text = buffer:raw()
    local subtree = tree:add(udplab, buffer(), "udplab chat")
    local kind, info
    if way == "to" then
        local w = word(text)
        if w == udplab.prefs.heartbeat then
            kind = "heartbeat"
        elseif w == udplab.prefs.quit then
            kind = "quit"
        else
            kind = "message"
        end
        subtree:add(f_kind, kind)
        if kind == "message" then
            subtree:add(f_message, buffer())
            info = "message " .. string.format("%q", text)
        else
            subtree:add(f_word, buffer())
            info = kind
        end
    else
        kind = "broadcast"
        subtree:add(f_kind, kind)
        local prefix = udplab.prefs.prefix
        if starts_with_prefix(text) then
            subtree:add(f_prefix, buffer(0, #prefix))
            if buffer:len() > #prefix then
                subtree:add(f_message, buffer(#prefix))
            end
            info = "broadcast " .. prefix .. " | " .. string.format("%q", text:sub(#prefix + 1))
        else
            subtree:add(f_message, buffer())
            info = "broadcast " .. string.format("%q", text)
        end
    end
    pinfo.cols.protocol = "UDPLAB"
    pinfo.cols.info = info
end

-- Named ports: the preference, or the port that Decode As matched.
function udplab.dissector(buffer, pinfo, tree)
    local text = buffer:raw()
    local server_port = udplab.prefs.port
    if server_port == 0 then
        server_port = pinfo.match_uint
    end
    learn(text, pinfo)
    show(buffer, pinfo, tree, direction(text, pinfo, server_port) or "to")
    return buffer:len()
end

-- No port named: the words, and what earlier datagrams showed.
local function heuristic(buffer, pinfo, tree)
    local text = buffer:raw()
    learn(text, pinfo)
    local way = direction(text, pinfo, udplab.prefs.port)
    if way == nil then
        return false
    end
    show(buffer, pinfo, tree, way)
    return true
end
udplab:register_heuristic("udp", heuristic)

-- UDP hands no empty datagram to any dissector: a post-dissector labels those between chat
-- endpoints.
local empty = Proto("udplab_empty", "udplab empty datagram")
local udp_length = Field.new("udp.length")

function empty.dissector(buffer, pinfo, tree)
    local length = udp_length()
    if length == nil or length.value ~= 8 then
        return
    end
    local way = direction("", pinfo, udplab.prefs.port)
    if way ~= nil then
        show_empty(pinfo, tree, way)
    end
end
-- All fields: udp.length is there on a first pass without a tree too.
register_postdissector(empty, true)
