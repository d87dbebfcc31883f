package rtpengine_test

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/luabind/enginetest"
	_ "github.com/siplua/siplua/modules/all"
	"github.com/siplua/siplua/modules/rtpengine"
)

// ngTap sits between siplua and rtpengine and keeps every ng datagram, so the test checks the commands
// on the wire.
type ngTap struct {
	conn *net.UDPConn
	mu   sync.Mutex
	reqs [][]byte // siplua → rtpengine
	reps [][]byte // rtpengine → siplua
}

func startTap(t *testing.T, ng *net.UDPAddr) *ngTap {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, ng)
	if err != nil {
		t.Fatal(err)
	}
	tap := &ngTap{conn: c}
	var peer *net.UDPAddr
	var pmu sync.Mutex
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pmu.Lock()
			peer = from
			pmu.Unlock()
			tap.mu.Lock()
			tap.reqs = append(tap.reqs, bytes.Clone(buf[:n]))
			tap.mu.Unlock()
			_, _ = up.Write(buf[:n])
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			tap.mu.Lock()
			tap.reps = append(tap.reps, bytes.Clone(buf[:n]))
			tap.mu.Unlock()
			pmu.Lock()
			p := peer
			pmu.Unlock()
			_, _ = c.WriteToUDP(buf[:n], p)
		}
	}()
	t.Cleanup(func() { c.Close(); up.Close() })
	return tap
}

// find returns the decoded request and reply dictionaries of an ng command.
func (tap *ngTap) find(t *testing.T, command string) (req, rep map[string]any) {
	t.Helper()
	tap.mu.Lock()
	defer tap.mu.Unlock()
	for _, r := range tap.reqs {
		cookie, body, _ := bytes.Cut(r, []byte(" "))
		v, err := rtpengine.Decode(body)
		if err != nil {
			t.Fatalf("ng request %q: %v", r, err)
		}
		d := v.(map[string]any)
		if d["command"] != command {
			continue
		}
		for _, p := range tap.reps {
			if c, b, _ := bytes.Cut(p, []byte(" ")); bytes.Equal(c, cookie) {
				rv, err := rtpengine.Decode(b)
				if err != nil {
					t.Fatalf("ng reply %q: %v", p, err)
				}
				return d, rv.(map[string]any)
			}
		}
		return d, nil
	}
	return nil, nil
}

const callScript = `
FLAGS = "replace-origin replace-session-connection ICE=remove"
function ksr_request_route()
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			if KSR.is_BYE() then KSR.rtpengine.rtpengine_manage(FLAGS) end
			KSR.tm.t_relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		if KSR.rtpengine.rtpengine_manage(FLAGS) < 0 then
			KSR.sl.sl_send_reply(503, "Media relay unavailable")
			return 1
		end
		KSR.tm.t_on_reply("ksr_onreply_manage")
	end
	KSR.tm.t_relay()
end

function ksr_onreply_manage()
	local code = KSR.pv.get("$rs")
	if code == 200 or code == 183 then KSR.rtpengine.rtpengine_manage(FLAGS) end
end
`

var mLine = regexp.MustCompile(`m=audio (\d+) `)

func mediaPort(t *testing.T, sdp string) int {
	t.Helper()
	m := mLine.FindStringSubmatch(sdp)
	if m == nil {
		t.Fatalf("no m=audio line in %q", sdp)
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// TestRTPEngineCall: a SIPp call through siplua with rtpengine_manage: the offer, answer and delete go on
// the wire with the call's Call-ID and tags, both SDPs are rewritten to rtpengine's address and ports,
// and the RTP SIPp plays (echoed by the callee) flows through rtpengine in both directions.
func TestRTPEngineCall(t *testing.T) {
	rtp := enginetest.StartRTPEngine(t)
	tap := startTap(t, net.UDPAddrFromAddrPort(rtp.NG))
	cfg := "[modules.tm]\n[modules.rr]\n[modules.sl]\n[modules.siputils]\n[modules.rtpengine]\nrtpengine_sock = [\"udp:" +
		tap.conn.LocalAddr().String() + "\"]\n"
	p := enginetest.Start(t, cfg, callScript)
	uas := enginetest.StartSIPp(t, "uas", "testdata/sipp/uas-rtp.xml", "-m", "1", "-rtp_echo")
	uac := enginetest.StartSIPp(t, "uac", "testdata/sipp/uac-rtp.xml", p.UDP.String(), "-m", "1",
		"-key", "target", uas.Addr(), "-inf", enginetest.SIPpInjection(t, "bob"))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	inRange := func(port int) bool { return port >= rtp.PortMin && port <= rtp.PortMax }

	offer, offerRep := tap.find(t, "offer")
	if offer == nil || offerRep == nil {
		t.Fatal("no offer (or no reply to it) on the wire")
	}
	callID, _ := offer["call-id"].(string)
	if callID == "" || offer["from-tag"] == "" || offer["ICE"] != "remove" ||
		!strings.Contains(strings.Join(anyStrings(offer["replace"]), ","), "origin") {
		t.Errorf("offer: %v", offer)
	}
	if sdp, _ := offerRep["sdp"].(string); !inRange(mediaPort(t, sdp)) || !strings.Contains(sdp, "c=IN IP4 127.0.0.1") {
		t.Errorf("offer's SDP not rewritten to rtpengine (ports %d-%d): %q", rtp.PortMin, rtp.PortMax, sdp)
	}
	if sdp, _ := offer["sdp"].(string); inRange(mediaPort(t, sdp)) {
		t.Errorf("the offer sent the rewritten SDP already: %q", sdp)
	}
	answer, answerRep := tap.find(t, "answer")
	if answer == nil || answerRep == nil || answer["call-id"] != callID || answer["to-tag"] == nil {
		t.Fatalf("answer: %v -> %v", answer, answerRep)
	}
	if sdp, _ := answerRep["sdp"].(string); !inRange(mediaPort(t, sdp)) {
		t.Errorf("answer's SDP not rewritten: %q", sdp)
	}
	del, delRep := tap.find(t, "delete")
	if del == nil || delRep == nil || del["call-id"] != callID || delRep["result"] != "ok" {
		t.Fatalf("delete: %v -> %v", del, delRep)
	}
	// the delete's reply carries the call's statistics: RTP went through rtpengine both ways
	tags, _ := delRep["tags"].(map[string]any)
	var perTag []int64
	for _, tv := range tags {
		perTag = append(perTag, packets(tv))
	}
	t.Logf("RTP packets received by rtpengine per side: %v", perTag)
	if len(perTag) != 2 || perTag[0] == 0 || perTag[1] == 0 {
		t.Errorf("RTP packets per side %v, want both > 0; totals: %v", perTag, delRep["totals"])
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// packets sums the RTP packets received on the streams of one tag of a query/delete reply.
func packets(tag any) int64 {
	var n int64
	td, _ := tag.(map[string]any)
	medias, _ := td["medias"].([]any)
	for _, m := range medias {
		md, _ := m.(map[string]any)
		streams, _ := md["streams"].([]any)
		for _, s := range streams {
			sd, _ := s.(map[string]any)
			st, _ := sd["stats"].(map[string]any)
			if p, ok := st["packets"].(int64); ok {
				n += p
			}
		}
	}
	return n
}
