// Package pike detects request floods per source IP (Kamailio's pike module).
package pike
