// Runs in the page (served by the Go test): one SIP.js user agent, driven by calls.js through
// page.evaluate. window.events collects what happened, for the Node side to wait on.
window.events = [];
window.startAgent = async function (o) {
  const SIP = await import('/sipjs/lib/index.js');
  const ev = (s) => { window.events.push(s); };
  const options = {
    uri: SIP.UserAgent.makeURI(`sip:${o.user}@${o.domain}`),
    authorizationUsername: o.user,
    authorizationPassword: o.password,
    transportOptions: { server: o.server, traceSip: !!o.trace },
    logLevel: o.trace ? 'debug' : 'error',
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: [] },
      iceGatheringTimeout: 500,
    },
    delegate: {
      onInvite(invitation) {
        ev('invite from ' + invitation.remoteIdentity.uri.user);
        invitation.stateChange.addListener((s) => ev('callee ' + s));
        invitation.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } })
          .catch((e) => ev('accept failed ' + e));
      },
    },
  };
  if (o.fakeMedia) {
    // signalling only (the peer is a SIPp UAS with plain RTP): an SDP that no WebRTC stack has to accept
    options.sessionDescriptionHandlerFactory = () => ({
      close() {},
      getDescription() {
        return Promise.resolve({ contentType: 'application/sdp',
          body: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n' });
      },
      hasDescription(ct) { return ct === 'application/sdp'; },
      rollbackDescription() { return Promise.resolve(); },
      sendDtmf() { return false; },
      setDescription() { return Promise.resolve(); },
    });
  }
  const ua = new SIP.UserAgent(options);
  window.ua = ua;
  window.SIP = SIP;
  await ua.start();
  const reg = new SIP.Registerer(ua, { expires: 300 });
  await new Promise((resolve, reject) => {
    reg.stateChange.addListener((s) => { if (s === 'Registered') resolve(); });
    reg.register({ requestDelegate: { onReject: (r) => reject(new Error('REGISTER rejected: ' + r.message.statusCode)) } })
      .catch(reject);
  });
  ev('registered');
};

// call sends INVITE to target; "caller Established" / "caller Terminated" follow.
window.call = async function (target) {
  const SIP = window.SIP;
  const inviter = new SIP.Inviter(window.ua, SIP.UserAgent.makeURI(target), {
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
  });
  window.session = inviter;
  inviter.stateChange.addListener((s) => window.events.push('caller ' + s));
  await inviter.invite({ requestDelegate: { onReject: (r) => window.events.push('caller rejected ' + r.message.statusCode) } });
};

window.hangup = async function () { await window.session.bye(); };
