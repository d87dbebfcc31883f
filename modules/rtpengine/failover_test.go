package rtpengine_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siplua/siplua/engine"
	"github.com/siplua/siplua/luabind/enginetest"
	"github.com/siplua/siplua/modules/rtpengine"
)

const inviteSDP = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-%[1]s\r\n" +
	"From: <sip:alice@example.com>;tag=a%[1]s\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"Call-ID: %[1]s@test\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: %[2]d\r\n\r\n%[3]s"

const sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"

func invite(t *testing.T, p *enginetest.Proxy, id string) *engine.Msg {
	return enginetest.Msg(t, p, fmt.Sprintf(inviteSDP, id, len(sdp), sdp))
}

// blackhole is a UDP socket that never answers: an rtpengine that is down without an ICMP error.
func blackhole(t *testing.T) string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().String()
}

// TestRTPEngineTimeoutAndFailover: a relay that does not answer costs one rtpengine_tout_ms, is disabled,
// and the next instance answers; with only dead relays the function fails (-1) after the timeout; past
// max_inflight a call fails at once.
func TestRTPEngineTimeoutAndFailover(t *testing.T) {
	rtp := enginetest.StartRTPEngine(t)
	dead := blackhole(t)
	t.Run("failover to the live instance", func(t *testing.T) {
		// the dead instance's weight makes it the first choice for nearly every Call-ID
		cfg := "[modules.rtpengine]\nrtpengine_tout_ms = 300\nrtpengine_sock = [\"udp:" + dead + "=1000\", \"udp:" + rtp.NG.String() + "=1\"]\n"
		p := enginetest.Start(t, cfg, "function ksr_request_route() end")
		offer := p.Export(t, "rtpengine", "rtpengine_offer").(func(*engine.Msg, string) int)
		t0 := time.Now()
		if rc := offer(invite(t, p, "fo1"), ""); rc != 1 {
			t.Fatalf("offer = %d, want 1 (the live instance)", rc)
		}
		if d := time.Since(t0); d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("offer took %s, want one timeout (300 ms) then the answer", d)
		}
		t0 = time.Now()
		if rc := offer(invite(t, p, "fo2"), ""); rc != 1 || time.Since(t0) > 200*time.Millisecond {
			t.Errorf("second offer = %d in %s: the dead instance should be disabled now", rc, time.Since(t0))
		}
		inst, _ := p.E.Module("rtpengine")
		show, _ := inst.(*rtpengine.RTPEngine).RPC()[0].Fn(nil)
		if s := fmt.Sprint(show); !strings.Contains(s, "disabled:true") || !strings.Contains(s, "timeouts:1") {
			t.Errorf("rtpengine.show: %s", s)
		}
	})
	t.Run("all dead: -1 after the timeout", func(t *testing.T) {
		cfg := "[modules.rtpengine]\nrtpengine_tout_ms = 200\nrtpengine_sock = [\"udp:" + dead + "\"]\n"
		p := enginetest.Start(t, cfg, "function ksr_request_route() end")
		offer := p.Export(t, "rtpengine", "rtpengine_offer").(func(*engine.Msg, string) int)
		t0 := time.Now()
		if rc := offer(invite(t, p, "dead1"), ""); rc != -1 {
			t.Fatalf("offer = %d, want -1", rc)
		}
		if d := time.Since(t0); d < 150*time.Millisecond || d > time.Second {
			t.Errorf("offer failed after %s, want about 200 ms", d)
		}
	})
	t.Run("max_inflight", func(t *testing.T) {
		cfg := "[modules.rtpengine]\nrtpengine_tout_ms = 500\nmax_inflight = 1\nrtpengine_sock = [\"udp:" + dead + "\"]\n"
		p := enginetest.Start(t, cfg, "function ksr_request_route() end")
		offer := p.Export(t, "rtpengine", "rtpengine_offer").(func(*engine.Msg, string) int)
		var wg sync.WaitGroup
		wg.Add(1)
		m1, m2 := invite(t, p, "busy1"), invite(t, p, "busy2")
		go func() { defer wg.Done(); offer(m1, "") }()
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		if rc := offer(m2, ""); rc != -1 || time.Since(t0) > 50*time.Millisecond {
			t.Errorf("second offer while one is in flight = %d after %s, want -1 at once", rc, time.Since(t0))
		}
		wg.Wait()
	})
}
