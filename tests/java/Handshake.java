// Mutual TLS between a server and a client in one JVM, both loading the
// helper's PKCS#12 keystore (their identity) and truststore (the trust
// anchors): prints the SPIFFE ID each side saw in the other's certificate.
// Usage: java Handshake KEYSTORE TRUSTSTORE PASSWORD
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class Handshake {
    public static void main(String[] args) throws Exception {
        char[] password = args[2].toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[0])) { ks.load(in, password); }
        KeyStore ts = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[1])) { ts.load(in, password); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ts);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

        SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket(0);
        server.setNeedClientAuth(true);
        final String[] serverSaw = new String[1];
        Thread t = new Thread(() -> {
            try (SSLSocket s = (SSLSocket) server.accept()) {
                s.startHandshake();
                serverSaw[0] = spiffeId((X509Certificate) s.getSession().getPeerCertificates()[0]);
                OutputStream out = s.getOutputStream();
                out.write(1);
                out.flush();
            } catch (Exception e) {
                serverSaw[0] = "error: " + e;
            }
        });
        t.start();
        try (SSLSocket c = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", server.getLocalPort())) {
            c.startHandshake();
            System.out.println("client saw " + spiffeId((X509Certificate) c.getSession().getPeerCertificates()[0]));
            c.getInputStream().read();
        }
        t.join();
        System.out.println("server saw " + serverSaw[0]);
    }

    static String spiffeId(X509Certificate cert) throws Exception {
        Collection<List<?>> sans = cert.getSubjectAlternativeNames();
        if (sans != null) {
            for (List<?> san : sans) {
                if (((Integer) san.get(0)) == 6) {
                    return (String) san.get(1);
                }
            }
        }
        return "(no URI SAN)";
    }
}
